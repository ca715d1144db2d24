"""The HPA's replica calculation, exactly: weighted utilisation and the corner cases of
``replica_calculator.go``, one named row each (every row's numbers are worked out in its comment)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.policy_helpers import snap
from vmscale.config.policy import TargetPolicyConfig
from vmscale.model import Metric
from vmscale.policy import build_policy_set, observe
from vmscale.policy.target import replica_recommendation

CPU60 = TargetPolicyConfig(down_stabilization_s=0)


def decide(cfg: TargetPolicyConfig, **kwargs: object) -> int:
    ps = build_policy_set([cfg], min_count=1, max_count=20)
    decision, _ = ps.decide(snap(**kwargs), ps.initial_state())  # type: ignore[arg-type]
    return decision.desired


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # mean of percentages (100+100+20)/3 = 73 would scale up to 4; the sum of use over the
        # sum of capacity is (100+100+20*4)/6 = 46.7% -> ratio 0.78 -> ceil(3*0.78) = 3: hold.
        pytest.param(
            {"cpus": [100, 100, 20], "vcpus": [1, 1, 4]}, 3, id="weighted-holds-where-the-mean-would-grow"
        ),
        # mean (90+10)/2 = 50 -> 0.83 -> ceil(1.67) = 2 would hold; weighted (90*4+10)/5 = 74%
        # -> 1.23 -> ceil(2*1.23) = 3.
        pytest.param({"cpus": [90, 10], "vcpus": [4, 1]}, 3, id="a-big-busy-instance-weighs-what-it-holds"),
        # Same sizes: the weighted figure is the plain mean (92/60 -> 2).
        pytest.param({"cpus": [92], "vcpus": [2]}, 2, id="one-size-weighted-equals-mean"),
        # Missing on scale-down, weighted by the missing instance's own vCPUs: ratio 20/60 < 1,
        # the 1-vCPU one counts 100%: (80+80+100)/9 = 28.9% -> 0.48 -> ceil(3*0.48) = 2.
        # (Counted per instance it would be (20+20+100)/3 = 46.7% -> ceil(2.33) = 3: hold.)
        pytest.param(
            {"cpus": [20, 20, None], "vcpus": [4, 4, 1]}, 2, id="missing-filled-with-its-own-capacity"
        ),
        # Starting instances count as 0 with their capacity on scale-up: (200+200)/(4+1) = 80%
        # -> 1.33 -> ceil(3*1.33) = 4.
        pytest.param(
            {"cpus": [100, 100], "vcpus": [2, 2], "booting": 1}, 4, id="unready-capacity-small-still-up"
        ),
        # A big starting instance (4 vCPUs): 400/8 = 50% -> 0.83: the direction flips, hold.
        pytest.param(
            {"cpus": [100, 100], "vcpus": [2, 2], "booting": 1, "booting_vcpus": 4},
            3,
            id="unready-capacity-big-flips-to-hold",
        ),
        # The observed ratio is exactly 1 with a missing sample: the HPA adds the missing instance
        # neither as 100% nor as 0%, the ratio stays 1, inside the tolerance: hold. (Counting it as
        # 0% would read 30% and halve the group.)
        pytest.param({"cpus": [60, None]}, 2, id="ratio-exactly-one-with-missing-holds"),
        pytest.param({"cpus": [60, 60, None, None]}, 4, id="ratio-exactly-one-with-two-missing-holds"),
        # Recomputed count moves against the new ratio: desired 5 (two not launched yet), ready
        # [100, 100, none] -> missing as 0: 66.7% -> 1.11 -> ceil(3*1.11) = 4 < 5 on an "up": hold.
        pytest.param({"cpus": [100, 100, None], "desired": 5}, 5, id="recomputed-count-the-wrong-way-holds"),
        # [50, 50, none] reads 0.83 (down); with the missing one at 100%: (50+50+100)/3 = 66.7%
        # -> 1.11, which points up: the direction flips, hold.
        pytest.param({"cpus": [50, 50, None]}, 3, id="missing-as-100-flips-direction-holds"),
        # [50, 50, 50, None] down: (150+100)/4 = 62.5 -> 1.04, inside the tolerance: hold.
        pytest.param({"cpus": [50, 50, 50, None]}, 4, id="missing-as-100-lands-in-tolerance-holds"),
    ],
)
def test_cpu_utilisation_table(kwargs: dict, expected: int) -> None:
    assert decide(CPU60, **kwargs) == expected


@pytest.mark.parametrize(
    ("cfg", "kwargs", "expected"),
    [
        # Tolerance is on the usage ratio: rps 54/50 = 1.08 is inside 0.1 (hold) although 4 rps
        # over the target; 56/50 = 1.12 is outside -> ceil(2*1.12) = 3.
        pytest.param(
            TargetPolicyConfig(metric=Metric.RPS, target=50, down_stabilization_s=0),
            {"cpus": [None, None], "rps": [54.0, 54.0]},
            2,
            id="rps-tolerance-on-the-ratio-inside",
        ),
        pytest.param(
            TargetPolicyConfig(metric=Metric.RPS, target=50, down_stabilization_s=0),
            {"cpus": [None, None], "rps": [56.0, 56.0]},
            3,
            id="rps-tolerance-on-the-ratio-outside",
        ),
        # A low cpu target: 21.5% over 20% is ratio 1.075, inside the band; 22.5% -> 1.125 -> 2.
        pytest.param(
            TargetPolicyConfig(target=20, down_stabilization_s=0),
            {"cpus": [21.5]},
            1,
            id="tolerance-low-target",
        ),
        pytest.param(
            TargetPolicyConfig(target=20, down_stabilization_s=0),
            {"cpus": [22.5]},
            2,
            id="tolerance-low-target-out",
        ),
        # rps is a per-instance figure (HPA pods metric): averaged per instance whatever the sizes,
        # (100+20)/2 = 60 -> 1.2 -> 3 (weighted by vCPUs it would read 84 -> 4).
        pytest.param(
            TargetPolicyConfig(metric=Metric.RPS, target=50, down_stabilization_s=0),
            {"cpus": [None, None], "rps": [100.0, 20.0], "vcpus": [4, 1]},
            3,
            id="rps-averaged-per-instance",
        ),
        # rps, missing on scale-down counts as exactly the target: (10+10+50)/3 = 23.3 -> 0.47 -> 2.
        pytest.param(
            TargetPolicyConfig(metric=Metric.RPS, target=50, down_stabilization_s=0),
            {"cpus": [None, None, None], "rps": [10.0, 10.0, None]},
            2,
            id="rps-missing-as-target-on-down",
        ),
        # rps at exactly the target with a missing instance: hold (not halved).
        pytest.param(
            TargetPolicyConfig(metric=Metric.RPS, target=50, down_stabilization_s=0),
            {"cpus": [None, None], "rps": [50.0, None]},
            2,
            id="rps-ratio-exactly-one-with-missing-holds",
        ),
    ],
)
def test_metric_table(cfg: TargetPolicyConfig, kwargs: dict, expected: int) -> None:
    assert decide(cfg, **kwargs) == expected


def test_zero_tolerance_still_holds_at_exactly_one_with_missing() -> None:
    obs = observe(snap([60, None]))
    desired, reason = replica_recommendation(obs, Metric.CPU, 60.0, 0.0)
    assert desired == 2, reason
    assert "left out (the ratio is exactly 1)" in reason


def test_reason_names_the_capacity_when_sizes_differ() -> None:
    obs = observe(snap([90, 10], vcpus=[4, 1]))
    desired, reason = replica_recommendation(obs, Metric.CPU, 60.0, 0.1)
    assert desired == 3
    assert (
        "cpu 74.0% over target 60% across 2 ready instances (5 vCPUs: sum of use over sum of capacity)"
        in reason
    )


def test_observe_weights_capacity_metrics_only() -> None:
    view = observe(snap([90, 10], vcpus=[4, 1], rps=[100.0, 20.0])).metrics
    assert view[Metric.CPU].mean == pytest.approx(74.0)
    assert view[Metric.RPS].mean == pytest.approx(60.0)


@given(
    cpus=st.lists(st.one_of(st.none(), st.floats(0, 100, allow_nan=False)), min_size=1, max_size=8),
    size=st.integers(1, 8),
    booting=st.integers(0, 3),
)
@settings(max_examples=200, deadline=None)
def test_one_size_everywhere_decides_as_if_sizes_did_not_exist(
    cpus: list[float | None], size: int, booting: int
) -> None:
    """Weighing by vCPUs changes nothing while every instance has the same size (the old meaning)."""
    ps = build_policy_set([CPU60], min_count=1, max_count=20)
    plain, _ = ps.decide(snap(cpus, booting=booting), ps.initial_state())
    sized, _ = ps.decide(
        snap(cpus, booting=booting, vcpus=[size] * len(cpus), booting_vcpus=size), ps.initial_state()
    )
    assert sized.desired == plain.desired
