"""Step scaling (adjustment by distance beyond the bound) and the schedule floor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.policy_helpers import T0, snap
from vmscale.config import parse_config
from vmscale.config.policy import SchedulePolicyConfig, StepAdjustment, StepPolicyConfig
from vmscale.errors import ConfigError
from vmscale.policy import build_policy_set

STEPS = StepPolicyConfig(
    upper=70,
    lower=30,
    steps_up=[
        StepAdjustment(lower_bound=0, upper_bound=10, adjustment=1),
        StepAdjustment(lower_bound=10, upper_bound=25, adjustment=2),
        StepAdjustment(lower_bound=25, adjustment=4),
    ],
    steps_down=[
        StepAdjustment(lower_bound=0, upper_bound=20, adjustment=1),
        StepAdjustment(lower_bound=20, adjustment=2),
    ],
    samples_up=1,
    samples_down=1,
    cooldown_down_s=0,
)


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        pytest.param(70.0, 4, id="at-upper-no-change"),
        pytest.param(75.0, 5, id="distance-5-step-1"),
        pytest.param(80.0, 6, id="distance-10-is-second-step"),
        pytest.param(94.0, 6, id="distance-24-step-2"),
        pytest.param(99.0, 8, id="distance-29-open-top-step-4"),
        pytest.param(50.0, 4, id="between-bounds-hold"),
        pytest.param(20.0, 3, id="below-by-10-remove-1"),
        pytest.param(5.0, 2, id="below-by-25-remove-2"),
    ],
)
def test_step_table(cpu: float, expected: int) -> None:
    ps = build_policy_set([STEPS], min_count=1, max_count=10)
    decision, _ = ps.decide(snap([cpu] * 4), ps.initial_state())
    assert decision.desired == expected, decision.reason


def test_step_needs_consecutive_samples() -> None:
    cfg = STEPS.model_copy(update={"samples_up": 2})
    ps = build_policy_set([cfg], min_count=1, max_count=10)
    state = ps.initial_state()
    first, state = ps.decide(snap([99.0] * 4, now=T0), state)
    second, state = ps.decide(snap([99.0] * 4, now=T0 + 1), state)
    assert (first.desired, second.desired) == (4, 8)
    assert "29 above 70 -> step +4: 4+4=8" in second.reason


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(
            [{"lower_bound": 0, "upper_bound": 20, "adjustment": 1}, {"lower_bound": 10, "adjustment": 2}],
            id="overlap",
        ),
        pytest.param(
            [{"lower_bound": 0, "adjustment": 1}, {"lower_bound": 10, "adjustment": 2}], id="open-then-more"
        ),
    ],
)
def test_step_config_rejects_overlapping_steps(steps: list[dict]) -> None:
    with pytest.raises(ConfigError, match="steps overlap"):
        parse_config({"policies": [{"kind": "step", "steps_up": steps}]})


def epoch(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()


# The same busy hours as before start/end windows existed (then written "0-59 9-17 * * 1-5", a
# cron matching every minute from 09:00 to 17:59): each entry is now a window.
SCHEDULE = SchedulePolicyConfig(
    entries=[
        {"start": "0 9 * * 1-5", "end": "0 18 * * 1-5", "min": 3},
        {"start": "0 12 * * 1-5", "duration": "1h", "min": 5},
        {"start": "0 9 * * 1-5", "end": "0 18 * * 1-5", "min": 2, "timezone": "America/New_York"},
    ]
)


@pytest.mark.parametrize(
    ("now", "desired", "expected"),
    [
        pytest.param(epoch(2026, 11, 23, 9, 0), 1, 3, id="monday-9-raises-to-3"),
        pytest.param(epoch(2026, 11, 23, 12, 30), 1, 5, id="lunch-largest-entry-wins"),
        pytest.param(epoch(2026, 11, 23, 8, 59), 1, 1, id="before-hours-no-floor"),
        pytest.param(epoch(2026, 11, 23, 20, 0), 1, 2, id="new-york-afternoon"),
        pytest.param(epoch(2026, 11, 28, 12, 0), 1, 1, id="saturday-no-floor"),
        pytest.param(epoch(2026, 11, 23, 10, 0), 4, 4, id="above-floor-holds"),
    ],
)
def test_schedule_floor(now: float, desired: int, expected: int) -> None:
    ps = build_policy_set([SCHEDULE], min_count=1, max_count=10)
    decision, _ = ps.decide(snap([50.0] * desired, now=now, desired=desired), ps.initial_state())
    assert decision.desired == expected, decision.reason


WEEKDAYS_9_TO_1730 = SchedulePolicyConfig(
    entries=[{"start": "0 9 * * MON-FRI", "end": "30 17 * * MON-FRI", "min": 3}]
)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(epoch(2026, 11, 23, 9, 0), 3, id="opens-at-9"),
        pytest.param(epoch(2026, 11, 23, 13, 0), 3, id="holds-all-afternoon"),
        pytest.param(epoch(2026, 11, 23, 17, 29), 3, id="still-open-at-17-29"),
        pytest.param(epoch(2026, 11, 23, 17, 30), 1, id="closed-at-17-30"),
        pytest.param(epoch(2026, 11, 27, 16, 0), 3, id="friday-afternoon"),
        pytest.param(epoch(2026, 11, 28, 10, 0), 1, id="saturday-closed"),
    ],
)
def test_a_window_holds_from_start_to_end(now: float, expected: int) -> None:
    """The bug this replaced: `0 9 * * 1-5` held its floor for the one minute the cron matched."""
    ps = build_policy_set([WEEKDAYS_9_TO_1730], min_count=1, max_count=10)
    decision, _ = ps.decide(snap([50.0], now=now, desired=1), ps.initial_state())
    assert decision.desired == expected, decision.reason


@pytest.mark.parametrize(
    ("entry", "now", "expected"),
    [
        pytest.param({"start": "@daily", "duration": "1h"}, epoch(2026, 11, 24, 0, 59), 2, id="daily-open"),
        pytest.param({"start": "@daily", "duration": "1h"}, epoch(2026, 11, 24, 1, 0), 1, id="daily-closed"),
        pytest.param(
            {"start": "0 22 * * *", "end": "0 6 * * *"}, epoch(2026, 11, 24, 3, 0), 2, id="across-midnight"
        ),
        pytest.param(
            {"start": "0 22 * * *", "end": "0 6 * * *"}, epoch(2026, 11, 24, 7, 0), 1, id="after-the-night"
        ),
        pytest.param(
            {"start": "0 * * * *", "duration": "3h"}, epoch(2026, 11, 24, 5, 10), 2, id="overlapping-windows"
        ),
    ],
)
def test_aliases_durations_and_night_windows(entry: dict[str, str], now: float, expected: int) -> None:
    cfg = SchedulePolicyConfig(entries=[{**entry, "min": 2}])
    ps = build_policy_set([cfg], min_count=1, max_count=10)
    decision, _ = ps.decide(snap([50.0], now=now, desired=1), ps.initial_state())
    assert decision.desired == expected, decision.reason


def _schedule_problems(entry: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"policies": [{"kind": "schedule", "entries": [entry]}]})
    return str(info.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            {"start": "* 25 * * *", "end": "0 18 * * *", "min": 2},
            "policies[0].entries[0].start: cron '* 25 * * *': the hour field '25' is not valid (0-23)",
            id="bad-hour",
        ),
        pytest.param(
            {"start": "0 9 * * *", "end": "0 18 * * *", "min": 2, "timezone": "Mars/Olympus"},
            "policies[0].entries[0].timezone: unknown timezone",
            id="bad-timezone",
        ),
        pytest.param(
            {"start": "0 9 * * *", "min": 2},
            "policies[0].entries[0].duration: give either `end`",
            id="neither-end-nor-duration",
        ),
        pytest.param(
            {"start": "0 9 * * *", "end": "0 18 * * *", "duration": "1h", "min": 2},
            "give either `end` (a cron expression) or `duration`",
            id="both-end-and-duration",
        ),
        pytest.param(
            {"start": "0 9 * * *", "duration": "8 hours", "min": 2},
            "write it like '8h30m'",
            id="unreadable-duration",
        ),
        pytest.param(
            {"cron": "0 9 * * 1-5", "min": 2},
            "`cron` became `start` plus `end`",
            id="old-cron-key-explains-the-change",
        ),
    ],
)
def test_schedule_config_errors(entry: dict[str, object], message: str) -> None:
    assert message in _schedule_problems(entry)
