"""The key figures of one demo run, computed from its two logs and nothing else.

``build_summary(autoscaler_events, client_records)`` is a pure function: the same logs
always give the same ``summary.json``, so a report can be rebuilt later (``vmscale report
DIR``) and the figures can be checked against hand-computed values in tests.

The story it looks for, in order (each step only after the previous one):

1. ``overload_start``   — the first ``high`` phase marker in the client log;
2. ``scale_up``         — the first applied ``decision`` with direction ``up`` (after 1);
3. ``new_instance_ready`` — the first ``instance`` event ``to == "ready"`` (after 2);
4. ``first_answer_from_new`` — the first 200 answer whose ``server`` is that instance
   (the time the answer *arrived*: ``t_send + latency_s``);
5. ``scale_in``         — the first instance going to ``draining`` or applied ``down``
   decision, whichever is first (after 2, or anywhere when there was no scale-up).

Every moment is ``{"t": epoch_s, "t_rel_s": seconds since the run started, ...}`` or
``null`` when it did not happen; ``what_happened`` says in words what did.

Latency windows (successful requests only, by send time):
``before`` = from the overload start (or the run start) to the scale-up decision — the
overloaded latency the scale-up is meant to fix; ``during`` = decision to the new
instance's first answer; ``after`` = from then to the end of the high phase;
``after_drain`` = from the moment the backlog was worked off (``backlog``, see
``report.backlog``) to the end of the high phase; ``high`` = the whole high phase.

``what_happened`` is written by ``report.story`` from these figures.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from vmscale.event_kinds import DecisionApplied, InstanceTransition, Logged, TickSummary, read_logged
from vmscale.percentile import percentile
from vmscale.report.backlog import Drain, drain_view, find_drain, service_time
from vmscale.report.story import narrative

T = TypeVar("T")

SUMMARY_VERSION = 1


def latency_stats(latencies: Iterable[float]) -> dict[str, Any]:
    values = sorted(latencies)
    return {
        "count": len(values),
        "p50_s": _round(percentile(values, 50)),
        "p95_s": _round(percentile(values, 95)),
        "p99_s": _round(percentile(values, 99)),
        "mean_s": _round(sum(values) / len(values)) if values else None,
    }


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def split_client_log(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(phase markers, request records), each sorted by time."""
    markers: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    for r in records:
        if r.get("event") == "phase" and _num(r.get("t")) is not None:
            markers.append(r)
        elif _num(r.get("t_send")) is not None:
            requests.append(r)
    markers.sort(key=lambda m: float(m["t"]))
    requests.sort(key=lambda r: float(r["t_send"]))
    return markers, requests


def _times(events: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> list[float]:
    """Every time in both logs (answers count at their arrival), from well-formed lines only."""
    times = [
        float(e["t"]) for e in events if _num(e.get("t")) is not None and isinstance(e.get("data"), dict)
    ]
    markers, requests = split_client_log(records)
    times += [float(m["t"]) for m in markers]
    times += [float(r["t_send"]) for r in requests] + [answer_time(r) for r in requests]
    return times


def run_start(events: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> float | None:
    """The earliest time in either log: the zero of every relative time."""
    times = _times(events, records)
    return min(times) if times else None


def run_end(events: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> float | None:
    times = _times(events, records)
    return max(times) if times else None


def is_error(r: dict[str, Any]) -> bool:
    status = r.get("status")
    return r.get("error") is not None or not (isinstance(status, int) and 200 <= status < 400)


def error_kind(r: dict[str, Any]) -> str:
    err = r.get("error")
    if err:
        return str(err).split(":", 1)[0].strip() or "error"
    status = r.get("status")
    return f"http {status}" if status is not None else "no response"


def answer_time(r: dict[str, Any]) -> float:
    return float(r["t_send"]) + (_num(r.get("latency_s")) or 0.0)


def _moment(t: float | None, start: float, **extra: Any) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"t": round(t, 6), "t_rel_s": round(t - start, 3), **extra}


def _first(items: Iterable[T], pred: Callable[[T], bool]) -> T | None:
    return next((i for i in items if pred(i)), None)


def _decision_view(e: Logged[DecisionApplied], start: float) -> dict[str, Any]:
    d = e.kind
    return {
        "t": round(e.t, 6),
        "t_rel_s": round(e.t - start, 3),
        "direction": d.direction,
        "from": d.previous,
        "to": d.desired,
        "policy": d.policy,
        "reason": d.reason,
        "actor": d.actor,
        "applied": True,
        "action": d.action if d.action != "scale" else None,  # manual actions: "paused", "resumed"
    }


_AUTOMATIC_ACTORS = {None, "autoscaler", "policy", "controller"}


def _worth_listing(e: Logged[DecisionApplied]) -> bool:
    """Scale decisions, and anything a person did (pause, resume, manual count), not idle holds."""
    d = e.kind
    return d.direction in ("up", "down") or d.action != "scale" or (d.actor or None) not in _AUTOMATIC_ACTORS


def instance_seconds(events: Sequence[dict[str, Any]]) -> float | None:
    """Integral of the live instance count over time (a step function held between ticks)."""
    points = [(e.t, e.kind.actual) for e in read_logged(events, TickSummary)]
    if len(points) < 2:
        return None if not points else 0.0
    total = 0.0
    for (t0, a0), (t1, _) in itertools.pairwise(points):
        total += float(a0 or 0.0) * (t1 - t0)
    return round(total, 3)


def build_summary(
    autoscaler_events: Sequence[dict[str, Any]], client_records: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """summary.json's content (see the module docstring for every definition)."""
    start = run_start(autoscaler_events, client_records)
    end = run_end(autoscaler_events, client_records)
    if start is None or end is None:
        return _empty_summary()
    markers, requests = split_client_log(client_records)
    decisions = read_logged(autoscaler_events, DecisionApplied)
    transitions = read_logged(autoscaler_events, InstanceTransition)
    ticks = read_logged(autoscaler_events, TickSummary)

    high = _first(markers, lambda m: m.get("phase") == "high")
    if high is None:  # no markers written: fall back on the requests' own phase labels
        first_high = _first(requests, lambda r: r.get("phase") == "high")
        t_high = float(first_high["t_send"]) if first_high else None
    else:
        t_high = float(high["t"])
    t_high_end: float | None = None
    if t_high is not None:
        nxt = _first(markers, lambda m: float(m["t"]) > t_high and m.get("phase") != "high")
        t_high_end = float(nxt["t"]) if nxt else None
        if t_high_end is None:
            highs = [float(r["t_send"]) for r in requests if r.get("phase") == "high"]
            t_high_end = max(highs) if highs else end

    after_t = t_high if t_high is not None else start
    up = _first(decisions, lambda e: e.kind.direction == "up" and e.t >= after_t)
    t_up = up.t if up else None
    ready = _first(transitions, lambda e: e.kind.dst == "ready" and e.t >= up.t) if up else None
    new_name = ready.kind.name if ready else None
    first_answer = (
        _first(
            requests,
            lambda r: r.get("server") == new_name and r.get("status") == 200 and float(r["t_send"]) >= t_up,
        )
        if ready and t_up is not None
        else None
    )
    t_answer = answer_time(first_answer) if first_answer else None

    scale_in_after = t_up if t_up is not None else start
    drain = _first(transitions, lambda e: e.kind.dst == "draining" and e.t >= scale_in_after)
    down = _first(decisions, lambda e: e.kind.direction == "down" and e.t >= scale_in_after)
    scale_in: dict[str, Any] | None = None
    if drain and (not down or drain.t <= down.t):
        scale_in = _moment(drain.t, start, how="draining", instance=drain.kind.name)
    elif down:
        # The decision came first; name the instance it drained when the log shows one.
        then = _first(transitions, lambda e: e.kind.dst == "draining" and e.t >= down.t)
        scale_in = _moment(
            down.t,
            start,
            how="decision",
            instance=then.kind.name if then else None,
            **{"from": down.kind.previous, "to": down.kind.desired},
        )

    ok = [r for r in requests if not is_error(r) and _num(r.get("latency_s")) is not None]
    backlog = _backlog(requests, ok, t_answer, end)
    windows = _latency_windows(ok, start, t_high, t_up, t_answer, t_high_end)
    drained = backlog.drained_at if backlog else None
    in_high = drained is not None and t_high_end is not None and drained < t_high_end
    windows["after_drain"] = _window(ok, start, drained if in_high else None, t_high_end)
    windows["high"] = _window(ok, start, t_high, t_high_end)
    errors = [r for r in requests if is_error(r)]
    actuals = [e.kind.actual for e in ticks]

    summary: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "start_t": round(start, 6),
        "end_t": round(end, 6),
        "duration_s": round(end - start, 3),
        "overload_start": _moment(t_high, start),
        "overload_end": _moment(t_high_end, start),
        "scale_up": _moment(
            t_up,
            start,
            **{"from": up.kind.previous, "to": up.kind.desired},
            policy=up.kind.policy,
            reason=up.kind.reason,
        )
        if up
        else None,
        "new_instance_ready": _moment(ready.t, start, instance=new_name) if ready else None,
        "first_answer_from_new": _moment(t_answer, start, instance=new_name) if first_answer else None,
        "scale_in": scale_in,
        "reaction_s": _reactions(t_high, t_up, ready.t if ready else None, t_answer),
        "backlog": drain_view(backlog, start, t_high_end),
        "peak_instances": int(max(actuals)) if actuals else None,
        "instance_seconds": instance_seconds(autoscaler_events),
        "latency": windows,
        "requests": {
            "total": len(requests),
            "ok": len(requests) - len(errors),
            "by_server": dict(Counter(str(r.get("server")) for r in ok).most_common()),
        },
        "errors": {
            "count": len(errors),
            "by_kind": dict(Counter(error_kind(r) for r in errors).most_common()),
        },
        "decisions": [_decision_view(e, start) for e in decisions if _worth_listing(e)],
    }
    summary["what_happened"] = narrative(summary)
    return summary


def _backlog(
    requests: Sequence[dict[str, Any]], ok: Sequence[dict[str, Any]], t_answer: float | None, end: float
) -> Drain | None:
    """When the backlog was worked off after the new instance's first answer (see report.backlog)."""
    if t_answer is None:
        return None
    high = [float(r["latency_s"]) for r in ok if r.get("phase") == "high"]
    service_s = service_time(high, [float(r["latency_s"]) for r in ok])
    return None if service_s is None else find_drain(requests, t_answer, end, service_s)


def _window(ok: Sequence[dict[str, Any]], start: float, lo: float | None, hi: float | None) -> dict[str, Any]:
    """Latency of the successful requests sent in ``[lo, hi)``."""
    if lo is None or hi is None:
        return {"from_rel_s": None, "to_rel_s": None, **latency_stats([])}
    lat = [float(r["latency_s"]) for r in ok if lo <= float(r["t_send"]) < hi]
    return {"from_rel_s": round(lo - start, 3), "to_rel_s": round(hi - start, 3), **latency_stats(lat)}


def _latency_windows(
    ok: Sequence[dict[str, Any]],
    start: float,
    t_high: float | None,
    t_up: float | None,
    t_answer: float | None,
    t_high_end: float | None,
) -> dict[str, Any]:
    return {
        "before": _window(ok, start, t_high if t_high is not None else start, t_up),
        "during": _window(ok, start, t_up, t_answer),
        "after": _window(ok, start, t_answer, t_high_end),
    }


def _reactions(
    t_high: float | None, t_up: float | None, t_ready: float | None, t_answer: float | None
) -> dict[str, float | None]:
    def gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 3)

    return {
        "overload_to_decision": gap(t_high, t_up),
        "decision_to_ready": gap(t_up, t_ready),
        "ready_to_first_answer": gap(t_ready, t_answer),
        "overload_to_first_answer": gap(t_high, t_answer),
    }


def _empty_summary() -> dict[str, Any]:
    empty = {"from_rel_s": None, "to_rel_s": None, **latency_stats([])}
    return {
        "version": SUMMARY_VERSION,
        "start_t": None,
        "end_t": None,
        "duration_s": None,
        "overload_start": None,
        "overload_end": None,
        "scale_up": None,
        "new_instance_ready": None,
        "first_answer_from_new": None,
        "scale_in": None,
        "reaction_s": _reactions(None, None, None, None),
        "backlog": None,
        "peak_instances": None,
        "instance_seconds": None,
        "latency": {k: dict(empty) for k in ("before", "during", "after", "after_drain", "high")},
        "requests": {"total": 0, "ok": 0, "by_server": {}},
        "errors": {"count": 0, "by_kind": {}},
        "decisions": [],
        "what_happened": "The logs are empty: nothing to report.",
    }
