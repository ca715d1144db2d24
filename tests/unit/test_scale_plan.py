"""The scale plan, by table: which instances a desired count resumes, launches, drains and stops.

Each row is one situation a person can check by eye; the ids say what it is about.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmscale.model import InstanceState
from vmscale.plan.scale import Member, ScalePlan, plan_scale

S = InstanceState


def m(index: int, state: S, **kw: object) -> Member:
    return Member(f"web-{index}", index, state, **kw)  # type: ignore[arg-type]


DRAIN = "scale-in: least busy ready instance"
EARLY = "scale-in before it was ready"

CASES = [
    pytest.param([m(1, S.READY)], 1, 0, True, ScalePlan(), id="at-desired-nothing-to-do"),
    pytest.param([m(1, S.READY)], 3, 0, True, ScalePlan(launch=2), id="short-launches-the-difference"),
    pytest.param([m(1, S.READY)], 3, 0, False, ScalePlan(), id="short-but-launch-backing-off"),
    pytest.param(
        [m(1, S.READY), m(2, S.WARM, pool=True), m(3, S.WARM, pool=True)],
        2,
        2,
        True,
        ScalePlan(resume=("web-2",)),
        id="short-takes-the-oldest-parked-instance-first",
    ),
    pytest.param(
        [m(1, S.READY), m(2, S.WARM, pool=True)],
        3,
        1,
        True,
        ScalePlan(resume=("web-2",), launch=1),
        id="short-by-more-than-the-pool-launches-the-rest",
    ),
    pytest.param(
        [m(1, S.READY), m(2, S.WARM, pool=True, busy=True)],
        2,
        1,
        True,
        ScalePlan(launch=1),
        id="a-parked-instance-with-a-call-in-flight-is-not-resumed",
    ),
    pytest.param(
        [m(1, S.READY), m(2, S.RESUMING, busy=True)],
        2,
        1,
        True,
        ScalePlan(),
        id="a-resuming-instance-counts-and-the-pool-waits-for-it",
    ),
    pytest.param(
        [m(1, S.READY, cpu=50.0), m(2, S.READY, cpu=10.0), m(3, S.READY, cpu=30.0)],
        2,
        0,
        True,
        ScalePlan(drain=(("web-2", f"{DRAIN} (cpu 10%)"),)),
        id="long-drains-the-least-busy",
    ),
    pytest.param(
        [m(1, S.READY, cpu=10.0), m(2, S.READY, cpu=10.0)],
        1,
        0,
        True,
        ScalePlan(drain=(("web-2", f"{DRAIN} (cpu 10%)"),)),
        id="long-with-equal-load-drains-the-newest",
    ),
    pytest.param(
        [m(1, S.READY, cpu=5.0), m(2, S.BOOTING), m(3, S.PENDING)],
        1,
        0,
        True,
        ScalePlan(
            stop=(("web-3", "scale-in before it was ready"), ("web-2", "scale-in before it was ready"))
        ),
        id="long-stops-what-does-not-serve-yet-newest-first",
    ),
    pytest.param(
        [m(1, S.READY, cpu=5.0), m(2, S.PENDING, busy=True)],
        1,
        0,
        True,
        ScalePlan(),
        id="long-waits-for-a-launch-in-flight-rather-than-drain-a-serving-one",
    ),
    pytest.param(
        [m(1, S.READY), m(2, S.FAILED), m(3, S.TERMINATING), m(4, S.FAILED, retry_ready=False)],
        1,
        0,
        True,
        ScalePlan(stop=(("web-2", "cleaning up a failed instance"), ("web-3", "retrying the terminate"))),
        id="clean-up-respects-each-instances-back-off",
    ),
    pytest.param([m(1, S.READY)], 1, 2, True, ScalePlan(launch_pool=2), id="refills-the-pool-when-settled"),
    pytest.param(
        [m(1, S.READY), m(2, S.BOOTING)],
        2,
        1,
        True,
        ScalePlan(),
        id="no-refill-while-capacity-is-arriving",
    ),
    pytest.param(
        [m(1, S.READY), m(2, S.BOOTING, pool=True), m(3, S.WARM, pool=True)],
        1,
        2,
        True,
        ScalePlan(),
        id="a-booting-pool-instance-counts-toward-the-pool",
    ),
    pytest.param([m(1, S.READY)], 1, 1, False, ScalePlan(), id="no-refill-while-launches-back-off"),
    pytest.param(
        [m(1, S.DRAINING), m(2, S.READY)], 1, 0, True, ScalePlan(), id="a-draining-instance-is-not-counted"
    ),
]


@pytest.mark.parametrize(("members", "desired", "pool", "can_launch", "expected"), CASES)
def test_plan(members: list[Member], desired: int, pool: int, can_launch: bool, expected: ScalePlan) -> None:
    assert plan_scale(members, desired, pool, can_launch=can_launch) == expected


states = st.sampled_from([S.PENDING, S.BOOTING, S.READY, S.WARM, S.RESUMING, S.DRAINING, S.FAILED])


@st.composite
def fleets(draw: st.DrawFn) -> list[Member]:
    n = draw(st.integers(0, 12))
    return [
        Member(
            f"web-{i}",
            i,
            (state := draw(states)),
            pool=state is S.WARM or (draw(st.booleans()) and state in (S.PENDING, S.BOOTING)),
            busy=draw(st.booleans()),
            cpu=draw(st.none() | st.floats(0, 100)),
        )
        for i in range(1, n + 1)
    ]


@given(fleets(), st.integers(0, 10), st.integers(0, 3))
def test_the_plan_never_overshoots_and_never_touches_a_busy_instance(
    members: list[Member], desired: int, pool: int
) -> None:
    plan = plan_scale(members, desired, pool, can_launch=True)
    busy = {x.name for x in members if x.busy}
    touched = set(plan.resume) | {n for n, _ in plan.drain} | {n for n, _ in plan.stop}
    assert not touched & busy
    live = sum(1 for x in members if x.in_group)
    arriving = live + len(plan.resume) + plan.launch
    assert arriving <= max(desired, live), "a plan never brings the group above what is asked"
    leaving = len(plan.drain) + sum(1 for n, r in plan.stop if r.startswith("scale-in"))
    assert live - leaving >= min(desired, live), "a plan never takes the group below what is asked"
