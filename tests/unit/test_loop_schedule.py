"""The loop's schedule as pure functions: full ticks on a grid, fast ticks while something moves."""

from __future__ import annotations

import pytest

from vmscale.controller.loop import FAST_POLL_S, next_full_at, wake_at


@pytest.mark.parametrize(
    ("previous", "interval", "now", "expected"),
    [
        pytest.param(10.0, 1.0, 10.2, 11.0, id="on-the-grid"),
        pytest.param(10.0, 1.0, 13.5, 13.5, id="a-long-tick-does-not-cause-a-burst-of-catch-up-ticks"),
        pytest.param(10.0, 5.0, 10.0, 15.0, id="slow-interval"),
    ],
)
def test_next_full_tick(previous: float, interval: float, now: float, expected: float) -> None:
    assert next_full_at(previous, interval, now) == expected


@pytest.mark.parametrize(
    ("now", "next_full", "interval", "transitional", "expected"),
    [
        pytest.param(10.0, 11.0, 1.0, False, 11.0, id="idle-sleeps-to-the-next-full-tick"),
        pytest.param(10.0, 11.0, 1.0, True, 10.0 + FAST_POLL_S, id="a-boot-or-drain-polls-fast"),
        pytest.param(10.0, 10.05, 1.0, True, 10.05, id="never-later-than-the-full-tick"),
        pytest.param(10.0, 10.05, 0.02, True, 10.02, id="a-tiny-interval-is-its-own-fast-poll"),
    ],
)
def test_wake_at(now: float, next_full: float, interval: float, transitional: bool, expected: float) -> None:
    assert wake_at(now, next_full, interval, transitional=transitional) == pytest.approx(expected)
