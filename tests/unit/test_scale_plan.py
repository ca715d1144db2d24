"""The scale plan, by table: which instances a desired count resumes, launches, drains and stops.

Each row is one situation a person can check by eye; the ids say what it is about.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmscale.model import InstanceState
from vmscale.plan.scale import Member, ScalePlan, Shape, plan_scale

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


NAMED = "scale-in: named by the vertical-first decision"

# A vertical-first decision's shape, carried out exactly: (members, desired, shape, can_resize, expected).
SHAPED = [
    pytest.param(
        [m(1, S.READY), m(2, S.READY)],
        2,
        Shape(sizes=(("web-1", 2),)),
        True,
        ScalePlan(resize=(("web-1", 2),)),
        id="a-size-resizes-the-named-instance-and-launches-nothing",
    ),
    pytest.param(
        [m(1, S.READY, vcpus=4)],
        3,
        Shape(sizes=(("web-1", 4),)),
        True,
        ScalePlan(launch=2),
        id="resized-already-then-launches-the-rest-at-template-size",
    ),
    pytest.param(
        [m(1, S.READY), m(2, S.READY)],
        3,
        Shape(sizes=(("web-1", 2), ("web-2", 2))),
        True,
        ScalePlan(resize=(("web-1", 2), ("web-2", 2)), launch=1),
        id="resizes-first-and-launches-beside-them",
    ),
    pytest.param(
        [m(1, S.READY, busy=True), m(2, S.BOOTING), m(3, S.WARM, pool=True)],
        2,
        Shape(sizes=(("web-1", 2), ("web-2", 2), ("web-3", 2), ("web-9", 2))),
        True,
        ScalePlan(),
        id="only-ready-instances-free-of-calls-are-resized",
    ),
    pytest.param(
        [m(1, S.READY)],
        1,
        Shape(sizes=(("web-1", 2),)),
        False,
        ScalePlan(),
        id="a-resize-back-off-waits",
    ),
    pytest.param(
        [m(1, S.READY, cpu=90.0), m(2, S.READY, cpu=5.0), m(3, S.READY, cpu=50.0)],
        2,
        Shape(remove=("web-1",)),
        True,
        ScalePlan(drain=(("web-1", f"{NAMED} (cpu 90%)"),)),
        id="named-removal-drains-exactly-that-one-not-the-least-busy",
    ),
    pytest.param(
        [m(1, S.READY, cpu=5.0), m(2, S.READY, cpu=5.0, busy=True)],
        1,
        Shape(remove=("web-2",)),
        True,
        ScalePlan(),
        id="a-named-victim-with-a-call-in-flight-is-waited-for",
    ),
    pytest.param(
        [m(1, S.READY, cpu=5.0), m(2, S.READY, cpu=50.0), m(3, S.BOOTING)],
        1,
        Shape(remove=("web-2",)),
        True,
        ScalePlan(
            drain=(("web-2", f"{NAMED} (cpu 50%)"),),
            stop=(("web-3", "scale-in before it was ready"),),
        ),
        id="an-excess-the-names-do-not-cover-falls-back-to-the-ranking",
    ),
    pytest.param(
        [m(1, S.READY), m(2, S.READY)],
        1,
        Shape(sizes=(("web-2", 2),), remove=("web-2",)),
        True,
        ScalePlan(drain=(("web-2", f"{NAMED} (cpu 0%)"),)),
        id="an-instance-on-its-way-out-is-not-resized",
    ),
    pytest.param(
        [m(1, S.READY)],
        1,
        Shape(remove=("web-1",)),
        True,
        ScalePlan(),
        id="names-do-nothing-without-an-excess",
    ),
]


@pytest.mark.parametrize(("members", "desired", "shape", "can_resize", "expected"), SHAPED)
def test_a_vertical_first_shape(
    members: list[Member], desired: int, shape: Shape, can_resize: bool, expected: ScalePlan
) -> None:
    assert plan_scale(members, desired, 0, can_launch=True, shape=shape, can_resize=can_resize) == expected


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


@given(fleets(), st.integers(0, 10), st.data())
def test_a_shaped_plan_resizes_only_ready_instances_free_of_calls_that_stay(
    members: list[Member], desired: int, data: st.DataObject
) -> None:
    names = [x.name for x in members] + ["web-99"]
    sizes = data.draw(st.lists(st.tuples(st.sampled_from(names), st.integers(1, 4)), max_size=4))
    remove = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    plan = plan_scale(members, desired, 0, can_launch=True, shape=Shape(tuple(sizes), tuple(remove)))
    by_name = {x.name: x for x in members}
    going = {n for n, _ in plan.drain} | {n for n, _ in plan.stop}
    for name, vcpus in plan.resize:
        x = by_name[name]
        assert x.state is S.READY and not x.busy and not x.pool and x.vcpus != vcpus and name not in going
    assert not {n for n, _ in plan.drain} & {x.name for x in members if x.busy}
