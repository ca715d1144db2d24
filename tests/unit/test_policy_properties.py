"""Properties over generated inputs: always within [min, max]; steady demand converges without flapping."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.policy_helpers import T0, snap
from vmscale.config.policy import (
    StepPolicyConfig,
    TargetPolicyConfig,
    ThresholdPolicyConfig,
)
from vmscale.policy import build_policy_set
from vmscale.simulate import SimParams, parse_trace, simulate, summarise

cpu = st.one_of(st.none(), st.floats(0, 100, allow_nan=False))
policy_cfg = st.one_of(
    st.builds(
        TargetPolicyConfig,
        target=st.floats(10, 80),
        tolerance=st.floats(0, 0.2),
        down_stabilization_s=st.sampled_from([0.0, 5.0, 300.0]),
        up_stabilization_s=st.sampled_from([0.0, 3.0]),
        cooldown_down_s=st.sampled_from([0.0, 10.0]),
    ),
    st.builds(
        ThresholdPolicyConfig,
        name=st.just("th"),
        upper=st.floats(50, 99),
        lower=st.sampled_from([None, 10.0]),
        samples_up=st.integers(1, 3),
        step=st.integers(1, 5),
    ),
    st.builds(
        StepPolicyConfig, name=st.just("step"), lower=st.sampled_from([None, 20.0]), samples_down=st.just(1)
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfgs=st.lists(policy_cfg, min_size=1, max_size=3, unique_by=lambda c: c.name),
    bounds=st.tuples(st.integers(0, 5), st.integers(0, 20)).map(lambda b: (b[0], b[0] + b[1])),
    ticks=st.lists(
        st.tuples(st.lists(cpu, max_size=12), st.integers(0, 4), st.integers(0, 40)), min_size=1, max_size=25
    ),
)
def test_decision_is_always_within_min_max(cfgs: list, bounds: tuple[int, int], ticks: list) -> None:
    lo, hi = bounds
    ps = build_policy_set(cfgs, min_count=max(lo, 0), max_count=max(hi, 1))
    state = ps.initial_state()
    for i, (cpus, booting, desired) in enumerate(ticks):
        # `desired` may lie outside [min, max] (the config changed under a running group)
        s = snap(
            cpus, now=T0 + i, desired=desired, booting=booting, min_count=ps.min_count, max_count=ps.max_count
        )
        decision, state = ps.decide(s, state)
        assert ps.min_count <= decision.desired <= ps.max_count, decision.reason


@settings(max_examples=60, deadline=None)
@given(
    demand=st.floats(0.05, 30),
    target=st.floats(30, 90),
    boot_s=st.integers(0, 30),
    initial=st.integers(1, 40),
    original=st.booleans(),
)
def test_steady_demand_converges_and_does_not_oscillate(
    demand: float, target: float, boot_s: int, initial: int, original: bool
) -> None:
    cfg = ThresholdPolicyConfig(upper=75) if original else TargetPolicyConfig(target=target)
    trace = parse_trace(f"t,demand\n0,{demand}\n900,{demand}\n")
    run = simulate(
        build_policy_set([cfg], min_count=1, max_count=100), trace, SimParams(boot_s=boot_s, initial=initial)
    )
    s = summarise(run)
    assert s.reversals == 0, [(c.t, c.before, c.after) for c in run.changes]
    tail = run.timeline.live[-300:]
    assert len(set(tail)) == 1  # settled well before the end
    assert s.final_instances >= min(demand, 100)  # and it serves the demand
