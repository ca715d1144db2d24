"""Pure figures over one run's logs: latency percentiles (``vmscale.percentile``), seconds over an
SLO, cost, flapping."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from vmscale.event_kinds import DecisionApplied, TickSummary, read_logged
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
    ticks = [(e.t, e.kind.actual) for e in read_logged(events, TickSummary)]
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


def figures(
    records: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    start: float,
    end: float,
    slo_s: float,
) -> dict[str, Any]:
    ok = [float(r["latency_s"]) for r in records if r.get("status") == 200 and r.get("latency_s") is not None]
    n_scale, reversals, peak = scale_events(events)
    return {
        "requests": len(records),
        "failed": sum(1 for r in records if r.get("status") != 200),
        "p50_s": percentile(ok, 50),
        "p95_s": percentile(ok, 95),
        "p99_s": percentile(ok, 99),
        "seconds_over_slo": seconds_over_slo(records, slo_s, start),
        "instance_seconds": round(instance_seconds(events, start, end), 1),
        "scale_events": n_scale,
        "reversals": reversals,
        "peak_instances": peak,
    }
