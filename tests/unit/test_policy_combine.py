"""Several policies, one decision; the default policy; state and the decision-log record."""

from __future__ import annotations

import json

import pytest

from tests.unit.policy_helpers import T0, snap
from vmscale.config.policy import SchedulePolicyConfig, TargetPolicyConfig, ThresholdPolicyConfig
from vmscale.model import Direction, Metric
from vmscale.policy import (
    DEFAULT_POLICY,
    PolicySetState,
    Proposal,
    build_policy_set,
    combine,
    decision_record,
)


def vote(desired: int | None, floor: int = 0) -> Proposal:
    return Proposal(desired, f"wants {desired}", floor=floor)


@pytest.mark.parametrize(
    ("votes", "expected", "winner"),
    [
        pytest.param({"a": vote(6), "b": vote(8)}, 8, "b", id="largest-scale-up-wins"),
        pytest.param({"a": vote(6), "b": vote(2)}, 6, "a", id="up-beats-down"),
        pytest.param({"a": vote(3), "b": vote(2)}, 3, "a", id="all-down-take-the-largest"),
        pytest.param({"a": vote(3), "b": vote(4)}, 4, "none", id="one-holds-blocks-scale-in"),
        pytest.param({"a": vote(3), "b": vote(None)}, 3, "a", id="abstainer-does-not-block"),
        pytest.param({"a": vote(None), "b": vote(None)}, 4, "none", id="all-abstain-hold"),
        pytest.param({"a": vote(2), "s": vote(None, floor=3)}, 3, "s", id="floor-limits-scale-in"),
        pytest.param({"a": vote(4), "s": vote(None, floor=6)}, 6, "s", id="floor-raises"),
        pytest.param({"a": vote(7), "s": vote(None, floor=6)}, 7, "a", id="up-above-floor"),
        pytest.param({"a": vote(4)}, 4, "a", id="single-policy-hold-names-it"),
    ],
)
def test_combine_rules(votes: dict[str, Proposal], expected: int, winner: str) -> None:
    desired, won, reason = combine(4, list(votes.items()))
    assert (desired, won) == (expected, winner), reason
    for name in votes:
        assert f"{name}: wants" in reason  # every policy's own reason is quoted


def test_real_policies_combined() -> None:
    target = TargetPolicyConfig(down_stabilization_s=0)
    guard = ThresholdPolicyConfig(name="guard", upper=95, lower=20, samples_up=1, samples_down=1)
    ps = build_policy_set([target, guard], min_count=1, max_count=10)
    assert ps.names == ["target", "guard"]
    # cpu 30% of 4: target wants 2, guard (lower 20) holds -> scale-in blocked
    d, _ = ps.decide(snap([30.0] * 4), ps.initial_state())
    assert d.desired == 4 and d.direction is Direction.NONE and "guard disagree" in d.reason
    # cpu 10%: both want down: target ceil(4*10/60)=1, guard 4-1=3 -> the smaller step, 3
    d, _ = ps.decide(snap([10.0] * 4), ps.initial_state())
    assert (d.desired, d.policy) == (3, "guard")
    # cpu 99%: target ceil(4*99/60)=7, guard needs only 1 sample above 95 -> 5; the larger wins
    d, _ = ps.decide(snap([99.0] * 4), ps.initial_state())
    assert (d.desired, d.policy) == (7, "target") and "scale-up 4->7 by target (largest" in d.reason


def test_empty_config_gets_the_default_target_on_cpu() -> None:
    ps = build_policy_set([], min_count=1, max_count=4)
    assert ps.names == ["target"]
    assert DEFAULT_POLICY.metric is Metric.CPU and DEFAULT_POLICY.target == 60.0
    assert DEFAULT_POLICY.tolerance == 0.1 and DEFAULT_POLICY.down_stabilization_s == 300.0


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ValueError, match="min_count"):
        build_policy_set([], min_count=5, max_count=4)


def test_state_round_trips_through_json_and_keeps_events() -> None:
    ps = build_policy_set([TargetPolicyConfig(), ThresholdPolicyConfig()], min_count=1, max_count=10)
    state = ps.initial_state()
    for i in range(3):
        _, state = ps.decide(snap([95.0] * 2, now=T0 + i, desired=2), state)
    assert state.events  # the scale-up is remembered for rate limits and cooldowns
    again = PolicySetState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert PolicySetState.from_dict({"version": 99}) == PolicySetState()  # unknown versions start afresh


def test_schedule_only_set_never_scales_in() -> None:
    ps = build_policy_set(
        [SchedulePolicyConfig(entries=[{"start": "0 3 * * *", "duration": "1h", "min": 2}])],
        min_count=1,
        max_count=5,
    )
    d, _ = ps.decide(snap([1.0] * 5, now=T0), ps.initial_state())
    assert d.desired == 5


def test_decision_record_answers_why() -> None:
    ps = build_policy_set([], min_count=1, max_count=4)
    s = snap([92.0, None], booting=1, desired=3, now=T0)
    decision, state = ps.decide(s, ps.initial_state())
    rec = decision_record(s, decision, state)
    json.dumps(rec)  # serialisable as is
    assert rec["now"] == T0 and rec["policy"] == "target"
    assert rec["inputs"]["desired"] == 3
    assert rec["inputs"]["instances"]["web-1"] == {
        "state": "ready",
        "vcpus": 1,
        "sample_t": T0 - 0.5,
        "cpu": 92.0,
        "rps": None,
        "latency_p95": None,
        "inflight": None,
    }
    assert rec["inputs"]["instances"]["boot-0"]["state"] == "booting"
    assert rec["inputs"]["group"]["ready"] == 2 and rec["inputs"]["group"]["cpu_missing"] == 1
    assert rec["result"]["desired"] == decision.desired and rec["reason"] == decision.reason
    assert rec["state"] == state.to_dict()


def test_bounds_in_the_snapshot_are_the_ones_in_force() -> None:
    """An operator who changes min/max at run time is obeyed even where the config allowed more."""
    ps = build_policy_set([TargetPolicyConfig(down_stabilization_s=0)], min_count=1, max_count=10)
    d, _ = ps.decide(snap([100.0] * 4, max_count=5), ps.initial_state())
    assert d.desired == 5 and "bounded to [1, 5] -> 5" in d.reason  # 7 recommended
    d, _ = ps.decide(snap([5.0] * 8, min_count=6), ps.initial_state())
    assert d.desired == 6  # ceil(8*5/60)=1, held at the run-time min
    d, _ = ps.decide(snap([50.0] * 12, desired=12, max_count=8), ps.initial_state())
    assert d.desired == 8  # above a lowered max: brought down to it
