"""Vertical first: grow the instances a group has before adding instances; shrink before removing.

Why: a vCPU hot-added to a running VM serves within a second, a new VM under software emulation
takes several (BENCHMARKS.md). Growing what already serves is the fast path; new instances are for
demand beyond what every instance can hold (``max_vcpus`` each).

How it decides, in two pure steps:

1. **Count in vCPUs.** ``observe(snapshot, vcpu_unit=base)`` gives the policies an observation
   where every instance counts as its vCPUs, and the bounds are ``min x base`` .. ``max x
   max_vcpus``. The policies run unchanged: the HPA's ``ceil(ratio x reporting)`` then asks for
   vCPUs (the sum of use over the target), its stabilization windows, rate limits and cooldowns
   move vCPUs, a threshold's ``step`` adds vCPUs. A single instance can therefore shrink too (a
   count of instances could never go below one).
2. **Place the change** (``plan_capacity``): more vCPUs go first to the ready instances, one at a
   time to the smallest, up to ``max_vcpus`` each; what does not fit becomes new instances of the
   template's size. Fewer vCPUs come first off the largest instances, down to the template's size
   (where the provider can shrink live), then whole instances go: ones not launched yet, then
   starting ones, then the smallest ready ones, each only if the group keeps at least the vCPUs
   asked for and ``min`` instances.

The result is a ``CapacityPlan``: the instance count to run, the live resizes, the instances to
remove, and the reason in words. ``plan_capacity`` never adds capacity the decision did not ask
for, and never removes more than it asked to remove.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from vmscale.model import Decision, InstanceSnapshot, InstanceState, Snapshot
from vmscale.policy.base import Observation, observe
from vmscale.policy.combine import PolicySet, PolicySetState

LIVE = (InstanceState.PENDING, InstanceState.BOOTING, InstanceState.READY)


class Route(StrEnum):
    """Which way the capacity moved."""

    VERTICAL = "vertical"  # only live resizes
    HORIZONTAL = "horizontal"  # only instances added or removed
    BOTH = "vertical+horizontal"  # resized, and the rest as instances
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Resize:
    """Give instance ``name`` ``vcpus_to`` vCPUs (it has ``vcpus_from``)."""

    name: str
    vcpus_from: int
    vcpus_to: int


@dataclass(frozen=True, slots=True)
class Sizing:
    """What the plan needs to know besides the snapshot: the sizes and what the provider can do."""

    base_vcpus: int  # a new instance's size (template.vcpus); also the smallest a shrink goes
    max_vcpus: int  # the most one instance may have (template.max_vcpus)
    can_shrink: bool = True  # the provider can remove vCPUs live (libvirt on this stack cannot)


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    """A vertical-first decision, ready to carry out.

    ``desired`` is the instance count after the plan: new instances (at ``base_vcpus``) are launched
    up to it, and it already leaves out the instances named in ``remove`` (drain, then terminate).
    ``resizes`` are applied live to ready instances. ``decision`` is the policies' own, in vCPUs.
    """

    desired: int
    resizes: tuple[Resize, ...]
    remove: tuple[str, ...]
    vcpus_before: int
    vcpus_after: int
    route: Route
    reason: str
    decision: Decision

    def to_dict(self) -> dict[str, object]:
        return {
            "desired": self.desired,
            "resizes": [[r.name, r.vcpus_from, r.vcpus_to] for r in self.resizes],
            "remove": list(self.remove),
            "vcpus_before": self.vcpus_before,
            "vcpus_after": self.vcpus_after,
            "route": self.route.value,
            "reason": self.reason,
            "decision": self.decision.to_dict(),
        }


def _live(snapshot: Snapshot) -> list[InstanceSnapshot]:
    return [i for i in snapshot.instances if i.state in LIVE]


def current_vcpus(snapshot: Snapshot, sizing: Sizing) -> int:
    """vCPUs of the live instances, plus ``base_vcpus`` for each one wanted but not launched yet."""
    live = _live(snapshot)
    return sum(i.vcpus for i in live) + max(0, snapshot.desired - len(live)) * sizing.base_vcpus


def observe_vcpus(snapshot: Snapshot, sizing: Sizing) -> Observation:
    """The observation the policies see in vertical-first mode: counts and bounds in vCPUs."""
    obs = observe(snapshot, vcpu_unit=sizing.base_vcpus)
    return replace(
        obs,
        desired=current_vcpus(snapshot, sizing),
        min_count=snapshot.min_count * sizing.base_vcpus,
        max_count=snapshot.max_count * sizing.max_vcpus,
    )


def decide_vertical(
    policies: PolicySet, snapshot: Snapshot, state: PolicySetState, sizing: Sizing
) -> tuple[CapacityPlan, PolicySetState]:
    """One vertical-first decision: the policies in vCPUs, then the change placed. Pure."""
    decision, state = policies.decide_observed(observe_vcpus(snapshot, sizing), state)
    return plan_capacity(snapshot, decision, sizing), state


class _Placement:
    """The working state of ``plan_capacity``: sizes after resizes, the count, what goes."""

    def __init__(self, snapshot: Snapshot, sizing: Sizing) -> None:
        self.sizing = sizing
        self.live = _live(snapshot)
        self.ready = sorted(i.name for i in self.live if i.state is InstanceState.READY)
        self.size = {i.name: i.vcpus for i in self.live}
        self.original = dict(self.size)
        self.count = snapshot.desired
        self.unlaunched = max(0, snapshot.desired - len(self.live))
        self.cancelled = 0  # instances wanted but not launched yet that the plan drops
        self.removed: list[str] = []
        self.notes: list[str] = []

    def grow(self, need: int) -> int:
        """Add up to ``need`` vCPUs to ready instances, smallest first; returns what did not fit."""
        cap = self.sizing.max_vcpus
        while need > 0:
            room = [n for n in self.ready if self.size[n] < cap]
            if not room:
                break
            name = min(room, key=lambda n: (self.size[n], n))
            self.size[name] += 1
            need -= 1
        return need

    def shrink(self, excess: int) -> int:
        """Take up to ``excess`` vCPUs off the largest ready instances; returns what is left."""
        base = self.sizing.base_vcpus
        while excess > 0:
            big = [n for n in self.ready if self.size[n] > base]
            if not big:
                break
            name = max(big, key=lambda n: (self.size[n], n))
            self.size[name] -= 1
            excess -= 1
        return excess

    def remove(self, excess: int, min_count: int) -> int:
        """Remove whole instances that fit in ``excess`` vCPUs; returns the vCPUs still in excess."""
        base = self.sizing.base_vcpus
        while excess >= base and self.unlaunched and self.count > min_count:
            self.unlaunched -= 1
            self.cancelled += 1
            self.count -= 1
            excess -= base
        # Starting instances go before serving ones; among those the smallest, newest first.
        order = sorted(
            self.live, key=lambda i: (i.state is InstanceState.READY, self.size[i.name], _rev(i.name))
        )
        for inst in order:
            if self.count <= min_count:
                break
            if self.size[inst.name] <= excess:
                excess -= self.size[inst.name]
                self.count -= 1
                self.removed.append(inst.name)
        return excess

    def resizes(self) -> tuple[Resize, ...]:
        return tuple(
            Resize(n, self.original[n], self.size[n])
            for n in self.ready
            if self.size[n] != self.original[n] and n not in self.removed
        )


def _rev(name: str) -> tuple[int, ...]:
    """Sort key putting later names first (``web-10`` after ``web-9``: newest first)."""
    return tuple(-ord(c) for c in name.rjust(64))


def plan_capacity(snapshot: Snapshot, decision: Decision, sizing: Sizing) -> CapacityPlan:
    """Place a decision made in vCPUs (see the module docstring). Pure."""
    work = _Placement(snapshot, sizing)
    before = current_vcpus(snapshot, sizing)
    want = decision.desired
    base = sizing.base_vcpus
    added = 0
    if want > before:
        left = work.grow(want - before)
        if left:
            added = math.ceil(left / base)
            room = max(0, snapshot.max_count - work.count)
            if added > room:
                work.notes.append(f"only {room} more instance(s) within max {snapshot.max_count}")
                added = room
            full = f"every ready instance at its max of {sizing.max_vcpus}" if work.ready else "none ready"
            work.notes.append(f"{left} vCPU(s) did not fit ({full})")
            work.count += added
    elif want < before:
        excess = work.shrink(before - want) if sizing.can_shrink else before - want
        if not sizing.can_shrink:
            work.notes.append("this provider cannot remove vCPUs live")
        left = work.remove(excess, snapshot.min_count)
        if left:
            work.notes.append(f"{left} vCPU(s) kept (no whole instance fits in them, or at min)")
    resizes = work.resizes()
    after = before + sum(r.vcpus_to - r.vcpus_from for r in resizes) + added * base
    after -= sum(work.original[n] for n in work.removed) + work.cancelled * base
    horizontal = added > 0 or work.count != snapshot.desired
    route = (
        Route.BOTH
        if resizes and horizontal
        else Route.VERTICAL
        if resizes
        else Route.HORIZONTAL
        if horizontal
        else Route.NONE
    )
    return CapacityPlan(
        desired=work.count,
        resizes=resizes,
        remove=tuple(work.removed),
        vcpus_before=before,
        vcpus_after=after,
        route=route,
        reason=_reason(before, want, resizes, added, work, decision),
        decision=decision,
    )


def _reason(
    before: int, want: int, resizes: tuple[Resize, ...], added: int, work: _Placement, decision: Decision
) -> str:
    parts = [f"{r.name} {r.vcpus_from}->{r.vcpus_to} vCPUs" for r in resizes]
    if added:
        parts.append(f"+{added} instance(s) of {work.sizing.base_vcpus} vCPU(s)")
    if work.cancelled:
        parts.append(f"{work.cancelled} not launched yet no longer wanted")
    if work.removed:
        parts.append(f"remove {', '.join(work.removed)}")
    head = f"vertical-first: {before} -> {want} vCPUs wanted: {'; '.join(parts) if parts else 'no change'}"
    if work.notes:
        head += f" ({'; '.join(work.notes)})"
    return f"{head} — {decision.reason}"
