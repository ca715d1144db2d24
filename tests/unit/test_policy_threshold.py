"""Threshold rule, including the exact reproduction of the original student system."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.unit.policy_helpers import T0, snap
from vmscale.config.policy import ThresholdPolicyConfig
from vmscale.model import Direction
from vmscale.policy import PolicySet, build_policy_set


def drive(ps: PolicySet, cpus: Sequence[float | None], start: int = 1) -> list[int]:
    """One tick per second; every instance decided is ready at once with the tick's group cpu."""
    state, desired, out = ps.initial_state(), start, []
    for i, cpu in enumerate(cpus):
        s = snap([cpu] * desired, now=T0 + i, min_count=ps.min_count, max_count=ps.max_count)
        decision, state = ps.decide(s, state)
        assert ps.min_count <= decision.desired <= ps.max_count
        desired = decision.desired
        out.append(desired)
    return out


ORIGINAL = ThresholdPolicyConfig(upper=75, samples_up=3, step=1)


def test_reproduces_the_original_system_exactly() -> None:
    """CPU > 75% for 3 consecutive one-second samples: 1 -> 2, once, and never back."""
    ps = build_policy_set([ORIGINAL], min_count=1, max_count=2)
    cpus = [10, 80, 90, 76, 95, 99, 100, 100] + [0.0] * 600
    counts = drive(ps, cpus)
    assert counts[:4] == [1, 1, 1, 2]  # the third sample above 75 (t=3) starts vm2
    assert set(counts[4:]) == {2}  # stays at 2: never a third, never back to 1


@pytest.mark.parametrize(
    ("cfg", "start", "cpus", "expected"),
    [
        pytest.param(ORIGINAL, 1, [75, 75, 75, 75], [1, 1, 1, 1], id="equal-to-upper-is-not-above"),
        pytest.param(ORIGINAL, 1, [80, 80, 70, 80, 80, 80], [1, 1, 1, 1, 1, 2], id="dip-resets-streak"),
        pytest.param(ORIGINAL, 1, [80, None, 80, 80, 80], [1, 1, 1, 1, 2], id="missing-sample-resets-streak"),
        pytest.param(
            ThresholdPolicyConfig(upper=75, samples_up=1, step=2), 1, [90, 90], [3, 5], id="step-k-2"
        ),
        pytest.param(
            ThresholdPolicyConfig(upper=75, samples_up=2),
            1,
            [90, 90, 90, 90, 90],
            [1, 2, 2, 3, 3],
            id="streak-restarts-after-trigger",
        ),
        pytest.param(
            ThresholdPolicyConfig(upper=75, lower=30, samples_down=2),
            4,
            [20, 20, 20, 20],
            [4, 3, 3, 2],
            id="down-after-m-samples",
        ),
        pytest.param(
            ThresholdPolicyConfig(upper=75, samples_down=1), 4, [0, 0, 0], [4, 4, 4], id="no-lower-never-down"
        ),
        pytest.param(
            ThresholdPolicyConfig(upper=75, samples_up=1, cooldown_up_s=3),
            1,
            [90] * 5,
            [2, 2, 2, 3, 3],
            id="up-cooldown",
        ),
        pytest.param(
            ThresholdPolicyConfig(upper=75, lower=30, samples_down=1, cooldown_down_s=2),
            3,
            [10] * 5,
            [2, 2, 1, 1, 1],
            id="down-cooldown-after-any-event",
        ),
    ],
)
def test_threshold_table(
    cfg: ThresholdPolicyConfig, start: int, cpus: list[float | None], expected: list[int]
) -> None:
    ps = build_policy_set([cfg], min_count=1, max_count=10)
    assert drive(ps, cpus, start=start) == expected


def test_same_sample_is_not_counted_twice() -> None:
    """A controller deciding twice on one sample (same timestamp) must not advance the streak."""
    ps = build_policy_set([ORIGINAL], min_count=1, max_count=2)
    state = ps.initial_state()
    s = snap([90.0], now=T0)
    for _ in range(5):
        decision, state = ps.decide(s, state)
        assert decision.desired == 1
    assert state.get("threshold").up_streak == 1


def test_reason_names_the_numbers() -> None:
    ps = build_policy_set([ORIGINAL], min_count=1, max_count=2)
    state = ps.initial_state()
    decision = None
    for i in range(3):
        decision, state = ps.decide(snap([92.0], now=T0 + i), state)
    assert decision is not None
    assert decision.direction is Direction.UP and decision.policy == "threshold"
    assert "cpu 92.0% > 75 for 3 consecutive samples -> 1+1=2" in decision.reason
