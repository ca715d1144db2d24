"""The benchmark figures are computed right (hand-computed small runs)."""

from __future__ import annotations

import pytest

from vmscale.bench.measure import instance_seconds, scale_events, seconds_over_slo


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
