"""The benchmark figures are computed right (hand-computed small runs)."""

from __future__ import annotations

import pytest

from vmscale.bench.measure import (
    first_added_s,
    instance_seconds,
    scale_events,
    seconds_over_slo,
    tick_integral,
)
from vmscale.event_kinds import DecisionApplied, EventKind, InstanceResized, InstanceTransition


def _rec(t: float, lat: float | None, status: int | None = 200) -> dict[str, object]:
    return {"t_send": t, "latency_s": lat, "status": status}


def test_seconds_over_slo_counts_slow_windows_and_windows_with_failures() -> None:
    records = [
        _rec(100.1, 0.5),
        _rec(100.6, 0.4),  # second 0: fine
        _rec(101.2, 3.0),
        _rec(101.5, 2.5),  # second 1: p95 over a 2 s SLO
        _rec(102.3, 0.3),
        _rec(102.4, None, None),  # second 2: a failure
        _rec(103.0, 1.9),  # second 3: under
    ]
    assert seconds_over_slo(records, 2.0, start=100.0) == 2


def test_instance_seconds_integrates_the_live_count_over_the_window() -> None:
    ticks = [{"type": "tick", "t": t, "data": {"actual": n}} for t, n in [(5, 1), (10, 1), (12, 2), (20, 1)]]
    # [10,12) at 1, [12,20) at 2, [20,25] at 1 -> 2 + 16 + 5
    assert instance_seconds(ticks, 10.0, 25.0) == pytest.approx(23.0)


def test_scale_events_count_reversals() -> None:
    def d(direction: str) -> dict[str, object]:
        return {"type": "decision", "t": 0, "data": {"direction": direction, "applied": True}}

    events = [d("up"), d("up"), d("down"), d("up"), {"type": "tick", "t": 1, "data": {"actual": 3}}]
    assert scale_events(events) == (4, 2, 3)


def test_vcpu_and_parked_seconds_integrate_their_tick_figures() -> None:
    ticks = [
        {"type": "tick", "t": t, "data": {"actual": 1, "vcpus": v, "warm": w}}
        for t, v, w in [(10, 1, 1), (12, 2, 1), (20, 1, 0)]
    ]
    assert tick_integral(ticks, lambda tick: tick.vcpus, 10.0, 25.0) == pytest.approx(2 + 16 + 5)
    assert tick_integral(ticks, lambda tick: tick.warm, 10.0, 25.0) == pytest.approx(10)
    old = [{"type": "tick", "t": 10, "data": {"actual": 1}}]
    assert tick_integral(old, lambda tick: tick.vcpus, 10.0, 25.0) is None, (
        "a log from before vCPUs were counted"
    )


def test_first_added_capacity_counts_from_the_first_automatic_scale_up() -> None:
    def ev(t: float, kind: EventKind) -> dict[str, object]:
        return {"type": kind.TYPE, "t": t, "data": kind.to_dict()}

    manual = ev(1, DecisionApplied(2, 1, "up", "manual: set to 2", "manual", "alice"))
    auto = ev(5, DecisionApplied(2, 1, "up", "cpu 90% > 60%", "target", "autoscaler"))
    grown = ev(5.4, InstanceResized("web-1", "serving", 1, 2, "the workload serves with 2 CPUs"))
    booted = ev(9, InstanceTransition("web-2", "booting", "ready", "health check passed"))
    early = ev(0, InstanceTransition("web-1", "booting", "ready", "health check passed"))
    assert first_added_s([early, manual, auto, grown, booted]) == pytest.approx(0.4)
    assert first_added_s([auto, booted]) == pytest.approx(4.0)
    assert first_added_s([manual, booted]) is None, "no automatic scale-up"
