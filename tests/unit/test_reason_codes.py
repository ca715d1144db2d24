"""Each decision carries a machine-readable reason code beside its prose (as the HPA sets conditions
such as ScalingLimited), and typed figures: the metric the policy measured and its value."""

from __future__ import annotations

import pytest

from tests.unit.policy_helpers import snap
from vmscale.config.policy import TargetPolicyConfig, ThresholdPolicyConfig
from vmscale.model import Metric, ReasonCode, Snapshot
from vmscale.policy import PolicySet, build_policy


def decide(configs: list[object], snapshot: Snapshot) -> tuple[ReasonCode, int]:
    ps = PolicySet(tuple(build_policy(c) for c in configs), min_count=1, max_count=4)  # type: ignore[arg-type]
    decision, _ = ps.decide(snapshot, ps.initial_state())
    return decision.code, decision.desired


TARGET = TargetPolicyConfig(name="cpu", target=60.0, down_stabilization_s=0)
LOW_GUARD = ThresholdPolicyConfig(name="guard", metric=Metric.CPU, upper=90, lower=30, samples_down=1)


@pytest.mark.parametrize(
    ("configs", "cpu", "ready", "code", "desired"),
    [
        pytest.param([TARGET], 90.0, 2, ReasonCode.ABOVE_TARGET, 3, id="above-target"),
        pytest.param([TARGET], 20.0, 3, ReasonCode.BELOW_TARGET, 1, id="below-target"),
        pytest.param([TARGET], 61.0, 2, ReasonCode.WITHIN_TOLERANCE, 2, id="dead-band"),
        pytest.param([TARGET], 100.0, 4, ReasonCode.LIMITED_MAX, 4, id="at-max"),
        pytest.param([TARGET], None, 2, ReasonCode.NO_DATA, 2, id="no-samples"),
        pytest.param([TARGET, LOW_GUARD], 40.0, 3, ReasonCode.SCALE_IN_VETOED, 3, id="scale-in-vetoed"),
    ],
)
def test_reason_codes(
    configs: list[object], cpu: float | None, ready: int, code: ReasonCode, desired: int
) -> None:
    assert decide(configs, snap([cpu] * ready, max_count=4)) == (code, desired)
