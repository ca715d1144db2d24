"""Vertical first: the policies count vCPUs, and the change is placed on the instances before
instances are added or removed. One named row per choice."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.unit.policy_helpers import T0
from vmscale.config.policy import TargetPolicyConfig, ThresholdPolicyConfig
from vmscale.model import Decision, Direction, InstanceSnapshot, InstanceState, Sample, Snapshot
from vmscale.policy import build_policy_set
from vmscale.policy.vertical import Resize, Route, Sizing, decide_vertical, observe_vcpus, plan_capacity

S = InstanceState
SIZING = Sizing(base_vcpus=1, max_vcpus=4)


def group(
    sizes: Sequence[int],
    *,
    cpus: Sequence[float | None] | None = None,
    states: Sequence[InstanceState] | None = None,
    desired: int | None = None,
    min_count: int = 1,
    max_count: int = 4,
) -> Snapshot:
    insts = []
    for i, size in enumerate(sizes):
        cpu = cpus[i] if cpus is not None else 50.0
        state = states[i] if states is not None else S.READY
        samples = (Sample(T0 - 0.5, cpu=cpu),) if cpu is not None and state is S.READY else ()
        insts.append(InstanceSnapshot(f"web-{i + 1}", state, vcpus=size, samples=samples))
    return Snapshot(T0, len(sizes) if desired is None else desired, min_count, max_count, tuple(insts))


def wanted(vcpus: int, current: int) -> Decision:
    """A policy decision asking for ``vcpus`` vCPUs (what the policies say in vertical mode)."""
    direction = Direction.UP if vcpus > current else Direction.DOWN if vcpus < current else Direction.NONE
    return Decision(vcpus, direction, "test", "target", current)


@pytest.mark.parametrize(
    ("snapshot", "want", "sizing", "resizes", "desired", "remove", "route"),
    [
        pytest.param(
            group([1]), 2, SIZING, [("web-1", 1, 2)], 1, [], Route.VERTICAL, id="grow-the-one-instance"
        ),
        pytest.param(
            group([1, 1]),
            4,
            SIZING,
            [("web-1", 1, 2), ("web-2", 1, 2)],
            2,
            [],
            Route.VERTICAL,
            id="spread-evenly-smallest-first",
        ),
        pytest.param(
            group([3, 1]), 5, SIZING, [("web-2", 1, 2)], 2, [], Route.VERTICAL, id="the-smallest-grows"
        ),
        pytest.param(
            group([4, 3]),
            9,
            SIZING,
            [("web-2", 3, 4)],
            3,
            [],
            Route.BOTH,
            id="fill-to-max-then-add-an-instance",
        ),
        pytest.param(group([4]), 6, SIZING, [], 3, [], Route.HORIZONTAL, id="all-at-max-adds-instances"),
        pytest.param(group([4, 4, 4, 4]), 20, SIZING, [], 4, [], Route.NONE, id="at-max-count-and-max-size"),
        pytest.param(
            group([1, 1], states=[S.READY, S.BOOTING]),
            4,
            SIZING,
            [("web-1", 1, 3)],
            2,
            [],
            Route.VERTICAL,
            id="only-ready-instances-are-resized",
        ),
        pytest.param(
            group([1, 1]),
            4,
            Sizing(base_vcpus=1, max_vcpus=1),
            [],
            4,
            [],
            Route.HORIZONTAL,
            id="no-room-to-grow-is-horizontal",
        ),
        pytest.param(
            group([4, 2]), 4, SIZING, [("web-1", 4, 2)], 2, [], Route.VERTICAL, id="shrink-the-largest-first"
        ),
        pytest.param(
            group([4]), 1, SIZING, [("web-1", 4, 1)], 1, [], Route.VERTICAL, id="a-single-instance-shrinks"
        ),
        pytest.param(
            group([2, 1, 1]),
            2,
            SIZING,
            [("web-1", 2, 1)],
            2,
            ["web-3"],
            Route.BOTH,
            id="shrink-to-base-then-remove-the-newest",
        ),
        pytest.param(
            group([1, 1, 1], states=[S.READY, S.READY, S.BOOTING]),
            2,
            SIZING,
            [],
            2,
            ["web-3"],
            Route.HORIZONTAL,
            id="a-starting-instance-goes-before-a-serving-one",
        ),
        pytest.param(
            group([1], desired=3),
            2,
            SIZING,
            [],
            2,
            [],
            Route.HORIZONTAL,
            id="a-not-launched-instance-is-dropped-first",
        ),
        pytest.param(
            group([2, 2, 1, 1]),
            3,
            Sizing(base_vcpus=1, max_vcpus=4, can_shrink=False),
            [],
            2,
            ["web-4", "web-3"],
            Route.HORIZONTAL,
            id="cannot-shrink-removes-only-what-fits",
        ),
        pytest.param(
            group([3], min_count=1),
            1,
            Sizing(base_vcpus=1, max_vcpus=4, can_shrink=False),
            [],
            1,
            [],
            Route.NONE,
            id="cannot-shrink-and-at-min-holds",
        ),
        pytest.param(
            group([2, 2]),
            3,
            Sizing(base_vcpus=2, max_vcpus=4),
            [],
            2,
            [],
            Route.NONE,
            id="no-whole-instance-fits-in-the-excess",
        ),
    ],
)
def test_placement_table(
    snapshot: Snapshot,
    want: int,
    sizing: Sizing,
    resizes: list[tuple[str, int, int]],
    desired: int,
    remove: list[str],
    route: Route,
) -> None:
    plan = plan_capacity(snapshot, wanted(want, sum(i.vcpus for i in snapshot.instances)), sizing)
    assert [(r.name, r.vcpus_from, r.vcpus_to) for r in plan.resizes] == resizes, plan.reason
    assert (plan.desired, list(plan.remove), plan.route) == (desired, remove, route), plan.reason


def test_the_plan_never_adds_more_than_asked_nor_removes_more() -> None:
    for sizes in ([1], [1, 2], [4, 1, 3], [2, 2, 2, 2]):
        snapshot = group(sizes)
        now = sum(sizes)
        for want in range(1, 17):
            plan = plan_capacity(snapshot, wanted(want, now), SIZING)
            if want >= now:
                # capacity rounds up by at most one new instance's worth, unless max count binds
                assert now <= plan.vcpus_after <= want + SIZING.base_vcpus - 1 or plan.desired == 4
            else:
                assert want <= plan.vcpus_after <= now, (sizes, want, plan.reason)


def test_an_instance_whose_host_is_full_is_not_grown_the_others_are_then_instances_are_added() -> None:
    """vcpu_cap (its host refused its growth): the plan grows the instance that can, then adds one."""
    base = group([1, 1])
    capped = InstanceSnapshot("web-1", S.READY, vcpus=1, vcpu_cap=1, samples=base.instances[0].samples)
    snapshot = Snapshot(T0, 2, 1, 4, (capped, base.instances[1]))
    plan = plan_capacity(snapshot, wanted(6, 2), SIZING)
    assert [(r.name, r.vcpus_from, r.vcpus_to) for r in plan.resizes] == [("web-2", 1, 4)]
    assert (plan.desired, plan.route, plan.placement) == (3, Route.BOTH, "resize-up+add/host-full")
    assert "web-1 at their host's limit, the rest at the max of 4" in plan.reason
    # Without the cap web-1 would have taken two of them, and no instance would be added.
    plain = plan_capacity(base, wanted(6, 2), SIZING)
    assert (plain.desired, plain.placement) == (2, "resize-up")


def test_reason_names_what_was_done_and_why() -> None:
    plan = plan_capacity(group([4, 3]), wanted(9, 7), SIZING)
    assert plan.reason.startswith("vertical-first: 7 -> 9 vCPUs wanted: web-2 3->4 vCPUs; +1 instance(s)")
    assert "1 vCPU(s) did not fit (every ready instance at its max of 4)" in plan.reason
    assert plan.reason.endswith("— test")
    assert plan.vcpus_after == 9
    assert plan.to_dict()["resizes"] == [["web-2", 3, 4]]


def test_policies_count_vcpus_in_vertical_mode() -> None:
    """target 60% on one 1-vCPU instance at 90%: ceil(1 * 90/60) = 2 vCPUs -> grow it, no launch."""
    ps = build_policy_set([TargetPolicyConfig(down_stabilization_s=0)], min_count=1, max_count=4)
    plan, _ = decide_vertical(ps, group([1], cpus=[90.0]), ps.initial_state(), SIZING)
    assert plan.resizes == (Resize("web-1", 1, 2),) and plan.desired == 1
    assert plan.route is Route.VERTICAL
    assert "ceil(1*90/60)=2" in plan.reason


def test_a_lone_big_instance_shrinks_when_idle() -> None:
    """Counted in instances the single instance could never shrink; counted in vCPUs it does:
    4 vCPUs at 10% -> ceil(4 * 10/60) = 1 vCPU."""
    ps = build_policy_set([TargetPolicyConfig(down_stabilization_s=0)], min_count=1, max_count=4)
    plan, _ = decide_vertical(ps, group([4], cpus=[10.0]), ps.initial_state(), SIZING)
    assert plan.resizes == (Resize("web-1", 4, 1),) and plan.desired == 1


def test_a_threshold_step_adds_a_vcpu() -> None:
    ps = build_policy_set([ThresholdPolicyConfig(upper=75, samples_up=1)], min_count=1, max_count=4)
    plan, _ = decide_vertical(ps, group([2, 2], cpus=[90.0, 90.0]), ps.initial_state(), SIZING)
    assert plan.resizes == (Resize("web-1", 2, 3),) and plan.desired == 2


def test_bounds_are_in_vcpus() -> None:
    obs = observe_vcpus(group([2, 1], min_count=1, max_count=3), SIZING)
    assert (obs.desired, obs.min_count, obs.max_count, obs.ready) == (3, 1, 12, 3)


def test_rps_is_read_per_instance_of_the_templates_size() -> None:
    """Counted in vCPUs, 100 rps on a 2-vCPU instance is 50 rps per 1-vCPU share of capacity."""
    from vmscale.model import Metric

    snap = Snapshot(
        T0, 1, 1, 4, (InstanceSnapshot("web-1", S.READY, vcpus=2, samples=(Sample(T0, rps=100.0),)),)
    )
    assert observe_vcpus(snap, SIZING).metric(Metric.RPS).mean == pytest.approx(50.0)
