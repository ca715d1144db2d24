"""Pure figures over one run's logs: latency percentiles (``vmscale.percentile``), seconds over an
SLO, cost (instance-seconds, vCPU-seconds, parked-seconds), flapping, and how soon the first
added capacity served after the first scale-up decision."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from vmscale.event_kinds import (
    DecisionApplied,
    InstanceResized,
    InstanceTransition,
    ResizeStage,
    TickSummary,
    read_logged,
)
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
    return tick_integral(events, lambda tick: tick.actual, start, end) or 0.0


def tick_integral(
    events: Sequence[dict[str, Any]], figure: Callable[[TickSummary], int | None], start: float, end: float
) -> float | None:
    """Integral of a tick figure (live instances, their vCPUs, parked ones) over [start, end], each
    value holding until the next tick; None when no tick carries it (a log from before it existed)."""
    ticks = [(e.t, v) for e in read_logged(events, TickSummary) if (v := figure(e.kind)) is not None]
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
    decisions = read_logged(events, DecisionApplied)
    dirs = [e.kind.direction for e in decisions if e.kind.direction in ("up", "down")]
    reversals = sum(1 for a, b in itertools.pairwise(dirs) if a != b)
    peak = max((e.kind.actual for e in read_logged(events, TickSummary)), default=0)
    return len(dirs), reversals, peak


def first_added_s(events: Sequence[dict[str, Any]]) -> float | None:
    """Seconds from the first automatic scale-up decision to the first capacity it added serving: an
    instance of the group becoming ready (launched, cloned or resumed) or a live resize reaching
    the workload. None without a scale-up (or when nothing arrived)."""
    ups = [
        e.t
        for e in read_logged(events, DecisionApplied)
        if e.kind.direction == "up" and e.kind.actor == "autoscaler"
    ]
    if not ups:
        return None
    arrivals = [e.t for e in read_logged(events, InstanceTransition) if e.kind.dst == "ready"]
    arrivals += [e.t for e in read_logged(events, InstanceResized) if e.kind.stage == ResizeStage.SERVING]
    after = [t for t in arrivals if t >= ups[0]]
    return round(min(after) - ups[0], 3) if after else None


def figures(
    records: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    start: float,
    end: float,
    slo_s: float,
) -> dict[str, Any]:
    ok = [float(r["latency_s"]) for r in records if r.get("status") == 200 and r.get("latency_s") is not None]
    n_scale, reversals, peak = scale_events(events)
    vcpu_s = tick_integral(events, lambda tick: tick.vcpus, start, end)
    parked_s = tick_integral(events, lambda tick: tick.warm, start, end)
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
        "peak_vcpus": max((e.kind.vcpus or 0 for e in read_logged(events, TickSummary)), default=0),
        "resizes": sum(
            1 for e in read_logged(events, InstanceResized) if e.kind.stage == ResizeStage.SERVING
        ),
        "first_added_s": first_added_s(events),
    }
