"""The simulator's figures against small traces computed by hand, and its input checks."""

from __future__ import annotations

import pytest

from vmscale.config.policy import TargetPolicyConfig, ThresholdPolicyConfig
from vmscale.policy import build_policy_set
from vmscale.simulate import SimParams, TraceError, parse_trace, simulate, summarise

STEP_TRACE = parse_trace("t,demand\n0,0.5\n5,1.5\n19,1.5\n")


def test_threshold_on_a_small_step_by_hand() -> None:
    """Boot 3 s; 2 samples above 75% needed. Worked out tick by tick:

    t0-4 demand 0.5 on 1 ready (50%); t5 demand 1.5: 100%, 0.5 unserved, streak 1; t6 streak 2 -> launch
    (ready at t9); t7, t8 still 1 ready + 1 booting, 0.5 unserved; t9-19 2 ready at 75%, all served.
    """
    ps = build_policy_set([ThresholdPolicyConfig(upper=75, samples_up=2)], min_count=1, max_count=2)
    run = simulate(ps, STEP_TRACE, SimParams(boot_s=3, initial=1))
    s = summarise(run)
    assert [(c.t, c.before, c.after) for c in run.changes] == [(6.0, 1, 2)]
    assert run.timeline.live == [1] * 7 + [2] * 13
    assert run.timeline.ready == [1] * 9 + [2] * 11
    assert s.duration_s == 20
    assert s.instance_seconds == 7 * 1 + 13 * 2
    assert s.unserved_seconds == 4 and s.longest_unserved_s == 4
    assert s.unserved_work == pytest.approx(4 * 0.5)
    assert s.overprovision_peak == pytest.approx(0.5)
    assert s.overprovision_mean == pytest.approx((5 * 0.5 + 2 * 0.5 + 11 * 0.5) / 20)
    assert (s.scale_events, s.reversals, s.peak_instances, s.final_instances) == (1, 0, 2, 2)


def test_target_up_and_down_by_hand() -> None:
    """HPA arithmetic with boot 2 s and a 5 s scale-down window.

    t5 demand 3: 1 ready at 100% -> ceil(1*100/60)=2; t6 the booting one counts as 0% -> (100+0)/2=50%
    flips the direction -> hold; t7 2 ready at 100% -> 4; t8 hold again; t9 4 ready at 75% -> 5;
    t10 (300+0)/5 = 60% -> dead band. t20 demand 0.2 -> 1 recommended, but the window still holds 5
    (t16-19) until t24 -> 5 -> 1.
    """
    trace = parse_trace("t,demand\n0,0.5\n5,3\n20,0.2\n40,0.2\n")
    ps = build_policy_set([TargetPolicyConfig(down_stabilization_s=5)], min_count=1, max_count=10)
    run = simulate(ps, trace, SimParams(boot_s=2, initial=1))
    assert [(c.t, c.before, c.after) for c in run.changes] == [(5, 1, 2), (7, 2, 4), (9, 4, 5), (24, 5, 1)]
    s = summarise(run)
    assert s.unserved_seconds == 4  # t5-t8; from t9 four ready instances carry 3.0
    assert s.unserved_work == pytest.approx(2 + 2 + 1 + 1)
    assert (s.scale_ups, s.scale_downs, s.reversals) == (3, 1, 1)
    assert "ceil(1*100/60)=2" in run.changes[0].reason


def test_scale_in_removes_booting_instances_first() -> None:
    trace = parse_trace("t,demand\n0,3\n1,0.1\n4,0.1\n")
    ps = build_policy_set([TargetPolicyConfig(down_stabilization_s=0)], min_count=1, max_count=10)
    run = simulate(ps, trace, SimParams(boot_s=30, initial=2))
    # t0: 2 ready at 100% -> 4 (2 booting); t1: 2 ready at 5% -> ceil(2*5/60)=1:
    # both booting instances go first, then one ready one
    assert [(c.t, c.after) for c in run.changes] == [(0, 4), (1, 1)]
    assert run.timeline.ready[2:] == [1, 1, 1] and run.timeline.live[2:] == [1, 1, 1]


@pytest.mark.parametrize(
    "cfgs",
    [
        pytest.param([TargetPolicyConfig()], id="target"),
        pytest.param([ThresholdPolicyConfig(upper=75, lower=25, samples_down=5)], id="threshold"),
        pytest.param(
            [TargetPolicyConfig(metric="rps", target=70), ThresholdPolicyConfig()], id="rps-and-threshold"
        ),
        pytest.param([TargetPolicyConfig(metric="latency_p95", target=0.2)], id="latency"),
    ],
)
def test_fast_observation_path_matches_full_snapshots(cfgs: list) -> None:
    """The O(1) observation the simulator builds must decide exactly like real snapshots do."""
    rows = ["t,demand"] + [f"{t},{d}" for t, d in [(0, 0.4), (30, 2.5), (200, 6.0), (400, 1.0), (900, 0.3)]]
    trace = parse_trace("\n".join([*rows, "1200,0.3"]))
    ps = build_policy_set(cfgs, min_count=1, max_count=12)
    fast = simulate(ps, trace, SimParams(boot_s=7, initial=1))
    slow = simulate(ps, trace, SimParams(boot_s=7, initial=1), full_snapshots=True)
    assert fast.changes == slow.changes
    assert fast.timeline == slow.timeline


def test_demand_holds_between_rows_and_steps_follow_step_s() -> None:
    trace = parse_trace("t,demand\n0,1\n10,2\n20,2\n")
    ps = build_policy_set([ThresholdPolicyConfig(upper=99, samples_up=100)], min_count=1, max_count=1)
    run = simulate(ps, trace, SimParams(step_s=5, initial=1))
    assert run.timeline.t == [0, 5, 10, 15, 20]
    assert run.timeline.demand == [1, 1, 2, 2, 2]
    assert summarise(run).instance_seconds == 25  # 5 steps x 5 s x 1 instance


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("time,load\n0,1\n", "must name the columns 't' and 'demand'", id="bad-header"),
        pytest.param("t,demand\n0,x\n", ":2: t and demand must be numbers", id="not-a-number"),
        pytest.param("t,demand\n0,1\n0,2\n", ":3: t must increase", id="not-increasing"),
        pytest.param("t,demand\n0,-1\n", "demand finite and >= 0", id="negative"),
        pytest.param("t,demand\n", "no rows", id="empty"),
    ],
)
def test_trace_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        parse_trace(text, "trace.csv")
