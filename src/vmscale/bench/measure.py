"""Pure figures over one run's logs: latency percentiles (``vmscale.percentile``), seconds over an
SLO, cost (instance-seconds, vCPU-seconds, parked-seconds), flapping, and how soon the first
added capacity served after the first scale-up decision."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from vmscale.percentile import percentile


def seconds_over_slo(records: Sequence[dict[str, Any]], slo_s: float, start: float) -> int:
    """One-second windows (by send time) whose p95 latency exceeds ``slo_s`` or that saw a failure."""
    bins: dict[int, list[float]] = defaultdict(list)
    failed: set[int] = set()
    for r in records:
        b = int(r["t_send"] - start)
        if r.get("status") == 200 and r.get("latency_s") is not None:
            bins[b].append(float(r["latency_s"]))
        else:
            failed.add(b)
    over = {b for b, lats in bins.items() if (percentile(lats, 95) or 0.0) > slo_s}
    return len(over | failed)


def instance_seconds(events: Sequence[dict[str, Any]], start: float, end: float) -> float:
    """Integral of the live instance count (from tick events) over [start, end]."""
    return tick_integral(events, "actual", start, end) or 0.0


def tick_integral(events: Sequence[dict[str, Any]], key: str, start: float, end: float) -> float | None:
    """Integral of a tick figure (``actual`` instances, ``vcpus``, ``warm``) over [start, end], each
    value holding until the next tick; None when no tick carries it (a log from before it existed)."""
    ticks = sorted(
        (e["t"], e["data"][key]) for e in events if e["type"] == "tick" and e["data"].get(key) is not None
    )
    if not ticks:
        return None
    total, prev_t, prev_n = 0.0, start, None
    for t, n in ticks:
        if t < start:
            prev_n = n
            continue
        if t > end:
            break
        if prev_n is not None:
            total += prev_n * (t - prev_t)
        prev_t, prev_n = t, n
    if prev_n is not None:
        total += prev_n * (end - prev_t)
    return total


def scale_events(events: Sequence[dict[str, Any]]) -> tuple[int, int, int]:
    """(applied scale decisions, direction reversals, peak live count)."""
    dirs = [
        e["data"]["direction"]
        for e in events
        if e["type"] == "decision"
        and e["data"].get("applied")
        and e["data"].get("direction") in ("up", "down")
    ]
    reversals = sum(1 for a, b in itertools.pairwise(dirs) if a != b)
    peak = max((e["data"]["actual"] for e in events if e["type"] == "tick"), default=0)
    return len(dirs), reversals, peak


def first_added_s(events: Sequence[dict[str, Any]]) -> float | None:
    """Seconds from the first automatic scale-up decision to the first capacity it added serving: an
    instance of the group becoming ready (launched, cloned or resumed) or a live resize reaching
    the workload. None without a scale-up (or when nothing arrived)."""
    decided = next(
        (
            e["t"]
            for e in events
            if e["type"] == "decision"
            and e["data"].get("direction") == "up"
            and e["data"].get("actor") == "autoscaler"
        ),
        None,
    )
    if decided is None:
        return None
    for e in events:
        if e["t"] < decided:
            continue
        became_ready = e["type"] == "instance" and e["data"].get("to") == "ready"
        if became_ready or (e["type"] == "resize" and e["data"].get("stage") == "serving"):
            return round(e["t"] - decided, 3)
    return None


def figures(
    records: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    start: float,
    end: float,
    slo_s: float,
) -> dict[str, Any]:
    ok = [float(r["latency_s"]) for r in records if r.get("status") == 200 and r.get("latency_s") is not None]
    n_scale, reversals, peak = scale_events(events)
    vcpu_s = tick_integral(events, "vcpus", start, end)
    parked_s = tick_integral(events, "warm", start, end)
    return {
        "requests": len(records),
        "failed": sum(1 for r in records if r.get("status") != 200),
        "p50_s": percentile(ok, 50),
        "p95_s": percentile(ok, 95),
        "p99_s": percentile(ok, 99),
        "seconds_over_slo": seconds_over_slo(records, slo_s, start),
        "instance_seconds": round(instance_seconds(events, start, end), 1),
        "vcpu_seconds": None if vcpu_s is None else round(vcpu_s, 1),
        "parked_seconds": None if parked_s is None else round(parked_s, 1),
        "scale_events": n_scale,
        "reversals": reversals,
        "peak_instances": peak,
        "peak_vcpus": max((e["data"].get("vcpus") or 0 for e in events if e["type"] == "tick"), default=0),
        "resizes": sum(1 for e in events if e["type"] == "resize" and e["data"].get("stage") == "serving"),
        "first_added_s": first_added_s(events),
    }
