"""Target tracking with the Kubernetes HPA semantics: one table per stage of the algorithm."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.unit.policy_helpers import T0, snap
from vmscale.config.policy import RateLimit, TargetPolicyConfig
from vmscale.model import Direction, Metric, ReasonCode
from vmscale.policy import build_policy_set

NO_STAB = TargetPolicyConfig(down_stabilization_s=0)


@pytest.mark.parametrize(
    ("cpus", "booting", "desired", "expected"),
    [
        pytest.param([65, 65], 0, 2, 2, id="dead-band-above"),
        pytest.param([55, 55], 0, 2, 2, id="dead-band-below"),
        pytest.param([67, 67], 0, 2, 3, id="just-outside-dead-band"),
        pytest.param([92], 0, 1, 2, id="ceil-of-ratio"),
        pytest.param([30, 30, 30, 30], 0, 4, 2, id="scale-down-ratio"),
        pytest.param([100], 1, 2, 2, id="not-ready-counted-as-zero-flips-to-hold"),
        pytest.param([100, 100], 1, 3, 4, id="not-ready-counted-as-zero-still-up"),
        pytest.param([30], 2, 3, 1, id="not-ready-ignored-on-scale-down"),
        pytest.param([30, None], 0, 2, 2, id="missing-as-100-on-down-lands-in-dead-band"),
        pytest.param([10, 10, 10, None], 0, 4, 3, id="missing-as-100-on-down-still-down"),
        pytest.param([90, None], 0, 2, 2, id="missing-as-0-on-up-flips-to-hold"),
        pytest.param([100, 100, None], 0, 3, 4, id="missing-as-0-on-up-still-up"),
        pytest.param([None, None], 0, 2, 2, id="no-samples-hold"),
        pytest.param([], 2, 2, 2, id="all-booting-hold"),
        pytest.param([100] * 8, 0, 8, 10, id="bounded-by-max"),
        pytest.param([5], 0, 1, 1, id="bounded-by-min"),
    ],
)
def test_ratio_table(cpus: list[float | None], booting: int, desired: int, expected: int) -> None:
    ps = build_policy_set([NO_STAB], min_count=1, max_count=10)
    decision, _ = ps.decide(snap(cpus, booting=booting, desired=desired), ps.initial_state())
    assert decision.desired == expected, decision.reason
    assert decision.current == desired


def test_reason_shows_the_arithmetic() -> None:
    ps = build_policy_set([], min_count=1, max_count=4)  # the default policy: target cpu 60%
    decision, _ = ps.decide(snap([92.0]), ps.initial_state())
    assert decision.policy == "target" and decision.direction is Direction.UP
    assert "cpu 92.0% over target 60% across 1 ready instance -> ceil(1*92/60)=2" in decision.reason
    assert decision.figures.observed == 92.0 and decision.figures.target == 60.0
    assert decision.figures.metric == "cpu" and decision.code is ReasonCode.ABOVE_TARGET


@pytest.mark.parametrize(
    ("cfg", "kwargs", "expected"),
    [
        pytest.param(
            TargetPolicyConfig(metric=Metric.RPS, target=50, down_stabilization_s=0),
            {"cpus": [None, None], "rps": [120.0, 80.0]},
            4,
            id="rps-per-instance",
        ),
        pytest.param(
            TargetPolicyConfig(metric=Metric.LATENCY_P95, target=0.25),
            {"cpus": [50, 50], "latency": 0.5},
            4,
            id="latency-group-ratio",
        ),
        pytest.param(
            TargetPolicyConfig(metric=Metric.LATENCY_P95, target=0.25),
            {"cpus": [50, 50], "latency": 0.26},
            2,
            id="latency-dead-band",
        ),
        pytest.param(
            TargetPolicyConfig(metric=Metric.LATENCY_P95, target=0.25),
            {"cpus": [50, 50]},
            2,
            id="latency-missing-hold",
        ),
    ],
)
def test_other_metrics(cfg: TargetPolicyConfig, kwargs: dict, expected: int) -> None:
    ps = build_policy_set([cfg], min_count=1, max_count=10)
    decision, _ = ps.decide(snap(**kwargs), ps.initial_state())
    assert decision.desired == expected, decision.reason


Step = tuple[float, Sequence[float | None], int]  # (seconds after T0, ready cpus, booting)


def run_steps(cfg: TargetPolicyConfig, start: int, steps: Sequence[Step], max_count: int = 20) -> list[int]:
    ps = build_policy_set([cfg], min_count=1, max_count=max_count)
    state, desired, out = ps.initial_state(), start, []
    for t, cpus, booting in steps:
        decision, state = ps.decide(
            snap(cpus, now=T0 + t, desired=desired, booting=booting, max_count=max_count), state
        )
        desired = decision.desired
        out.append(desired)
    return out


@pytest.mark.parametrize(
    ("cfg", "start", "steps", "expected"),
    [
        pytest.param(
            TargetPolicyConfig(),
            4,
            [(0, [60] * 4, 0), (100, [30] * 4, 0), (299, [30] * 4, 0), (300, [30] * 4, 0)],
            [4, 4, 4, 2],
            id="down-stabilization-keeps-highest-of-300s",
        ),
        pytest.param(
            TargetPolicyConfig(),
            4,
            [(0, [30] * 4, 0), (10, [30] * 4, 0), (300, [30] * 4, 0)],
            [4, 4, 2],
            id="first-decision-seeds-the-down-window-with-current",
        ),
        pytest.param(
            TargetPolicyConfig(),
            2,
            [(0, [90, 90], 0), (1, [30, 30, 30], 0), (2, [30, 30, 30], 0)],
            [3, 3, 3],
            id="down-stabilization-after-scale-up",
        ),
        pytest.param(
            TargetPolicyConfig(up_stabilization_s=60),
            4,
            [(0, [60] * 4, 0), (10, [90] * 4, 0), (59, [90] * 4, 0), (61, [90] * 4, 0)],
            [4, 4, 4, 6],
            id="up-stabilization-keeps-lowest-of-60s",
        ),
        pytest.param(
            TargetPolicyConfig(target=10),
            2,
            [(0, [100, 100], 0), (5, [100] * 6, 0), (15, [100] * 6, 0)],
            [6, 6, 12],
            id="up-rate-limit-plus-4-or-double-per-15s",
        ),
        pytest.param(
            TargetPolicyConfig(target=10, up_limit=RateLimit(instances=1, percent=0, period_s=10)),
            2,
            [(0, [100, 100], 0), (5, [100] * 3, 0), (10, [100] * 3, 0)],
            [3, 3, 4],
            id="up-rate-limit-custom",
        ),
        pytest.param(
            TargetPolicyConfig(down_stabilization_s=0, down_limit=RateLimit(instances=1, percent=0)),
            4,
            [(0, [10] * 4, 0), (1, [10] * 3, 0), (15, [10] * 3, 0)],
            [3, 3, 2],
            id="down-rate-limit-one-per-15s",
        ),
        pytest.param(
            TargetPolicyConfig(down_stabilization_s=0, down_limit=RateLimit(instances=0, percent=50)),
            8,
            [(0, [10] * 8, 0)],
            [4],
            id="down-rate-limit-half",
        ),
        pytest.param(
            TargetPolicyConfig(cooldown_up_s=30),
            1,
            [(0, [100], 0), (10, [100, 100], 0), (30, [100, 100], 0)],
            [2, 2, 4],
            id="up-cooldown",
        ),
        pytest.param(
            TargetPolicyConfig(down_stabilization_s=0, cooldown_down_s=60),
            1,
            [(0, [100], 0), (20, [10, 10], 0), (60, [10, 10], 0)],
            [2, 2, 1],
            id="down-cooldown-after-scale-up",
        ),
    ],
)
def test_behaviour_over_time(
    cfg: TargetPolicyConfig, start: int, steps: list[Step], expected: list[int]
) -> None:
    assert run_steps(cfg, start, steps) == expected


def test_replay_from_saved_state_gives_the_same_decisions() -> None:
    """State survives a restart: JSON round trip in the middle of a stabilization window."""
    import json

    from vmscale.policy import PolicySetState

    ps = build_policy_set([TargetPolicyConfig()], min_count=1, max_count=10)
    state = ps.initial_state()
    _, state = ps.decide(snap([60] * 4, now=T0), state)
    restored = PolicySetState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    later = snap([30] * 4, now=T0 + 100, desired=4)
    assert ps.decide(later, restored) == ps.decide(later, state)
    assert ps.decide(later, restored)[0].desired == 4  # still inside the 300 s window


def test_cpu_target_that_hides_saturation_is_refused() -> None:
    """At target 95% a saturated instance reads 100%, inside the dead band: the group would never grow."""
    from vmscale.config import parse_config
    from vmscale.errors import ConfigError

    with pytest.raises(ConfigError, match="puts 100% inside the dead band"):
        parse_config({"policies": [{"kind": "target", "target": 95}]})
    parse_config({"policies": [{"kind": "target", "metric": "rps", "target": 95}]})  # rps is not capped


def test_target_tracks_requests_in_flight_per_vcpu_when_cpu_reads_low() -> None:
    """A starved instance on a contended host reports modest CPU while its queue grows; the
    in-flight metric still sees the overload."""
    from vmscale.config.policy import TargetPolicyConfig
    from vmscale.model import InstanceSnapshot, InstanceState, Metric, Sample, Snapshot
    from vmscale.policy import build_policy_set

    ps = build_policy_set(
        [TargetPolicyConfig(name="queue", metric=Metric.INFLIGHT, target=1.5)], min_count=1, max_count=4
    )
    snap = Snapshot(
        now=1000.0,
        desired=1,
        min_count=1,
        max_count=4,
        instances=(
            InstanceSnapshot("web-1", InstanceState.READY, samples=(Sample(999.0, cpu=40.0, inflight=4.0),)),
        ),
    )
    decision, _ = ps.decide(snap, ps.initial_state())
    assert decision.desired == 3  # ceil(1 * 4 / 1.5)
    assert "in flight per vCPU" in decision.reason
