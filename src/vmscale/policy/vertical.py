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
   time to the smallest, up to ``max_vcpus`` each (or less where the instance's host has just
   refused its growth: ``InstanceSnapshot.vcpu_cap``); what does not fit becomes new instances of
   the template's size. Fewer vCPUs come first off the largest instances, down to the template's size
   (where the provider can shrink live), then whole instances go: ones not launched yet, then
   starting ones, then the smallest ready ones, each only if the group keeps at least the vCPUs
   asked for and ``min`` instances.

The result is a ``CapacityPlan``: the instance count to run, the live resizes, the instances to
remove, and the reason in words, with a machine-readable ``placement`` beside it that says which way it
went and why (``"resize-up"``, ``"add/at-max-vcpus"``, ``"remove/cannot-shrink"`` ...: a ``Move``,
then the ``Why`` codes). ``plan_capacity`` never adds capacity the decision did not ask for, and
never removes more than it asked to remove.
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


class Move(StrEnum):
    """What a vertical-first decision did, for machines (``CapacityPlan.placement``)."""

    RESIZE_UP = "resize-up"
    ADD = "add"
    RESIZE_UP_ADD = "resize-up+add"
    RESIZE_DOWN = "resize-down"
    REMOVE = "remove"
    RESIZE_DOWN_REMOVE = "resize-down+remove"
    HOLD = "hold"


class Why(StrEnum):
    """Why it went that way (instances rather than vCPUs, or less than asked)."""

    AT_MAX_VCPUS = "at-max-vcpus"  # every ready instance already has template.max_vcpus
    HOST_FULL = "host-full"  # some could grow but their hosts have no headroom now (vcpu_cap)
    NONE_READY = "none-ready"  # no ready instance to grow
    AT_MAX_COUNT = "at-max-count"  # the group's max bounded the instances added
    AT_BASE_VCPUS = "at-base-vcpus"  # shrunk to template.vcpus: the rest comes off as instances
    CANNOT_SHRINK = "cannot-shrink"  # the provider cannot remove vCPUs live: whole instances go
    KEPT = "kept"  # some excess kept: no whole instance fits in it, or the group is at its min


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
    count_before: int = 0  # the instance count in force before it
    because: tuple[Why, ...] = ()

    @property
    def move(self) -> Move:
        up = any(r.vcpus_to > r.vcpus_from for r in self.resizes)
        down = any(r.vcpus_to < r.vcpus_from for r in self.resizes)
        added = self.desired > self.count_before
        removed = self.desired < self.count_before or bool(self.remove)
        if up:
            return Move.RESIZE_UP_ADD if added else Move.RESIZE_UP
        if down:
            return Move.RESIZE_DOWN_REMOVE if removed else Move.RESIZE_DOWN
        return Move.ADD if added else Move.REMOVE if removed else Move.HOLD

    @property
    def placement(self) -> str:
        """Which way and why, for machines: ``"add/at-max-vcpus"``, ``"resize-up"``..."""
        return self.move.value + ("/" + ",".join(w.value for w in self.because) if self.because else "")

    def to_dict(self) -> dict[str, object]:
        return {
            "desired": self.desired,
            "resizes": [[r.name, r.vcpus_from, r.vcpus_to] for r in self.resizes],
            "remove": list(self.remove),
            "vcpus_before": self.vcpus_before,
            "vcpus_after": self.vcpus_after,
            "route": self.route.value,
            "placement": self.placement,
            "because": [w.value for w in self.because],
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
        self.cap = {
            i.name: sizing.max_vcpus if i.vcpu_cap is None else min(i.vcpu_cap, sizing.max_vcpus)
            for i in self.live
        }
        self.original = dict(self.size)
        self.count = snapshot.desired
        self.unlaunched = max(0, snapshot.desired - len(self.live))
        self.cancelled = 0  # instances wanted but not launched yet that the plan drops
        self.removed: list[str] = []
        self.notes: list[str] = []
        self.because: list[Why] = []

    def grow(self, need: int) -> int:
        """Add up to ``need`` vCPUs to ready instances, smallest first; returns what did not fit."""
        while need > 0:
            room = [n for n in self.ready if self.size[n] < self.cap[n]]
            if not room:
                break
            name = min(room, key=lambda n: (self.size[n], n))
            self.size[name] += 1
            need -= 1
        return need

    def host_full(self) -> list[str]:
        """Ready instances held below ``max_vcpus`` by their host's headroom."""
        return [n for n in self.ready if self.cap[n] < self.sizing.max_vcpus and self.size[n] >= self.cap[n]]

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
            held = work.host_full()
            full = f"every ready instance at its max of {sizing.max_vcpus}" if work.ready else "none ready"
            if held:
                full = f"{', '.join(held)} at their host's limit, the rest at the max of {sizing.max_vcpus}"
            work.because.append(Why.HOST_FULL if held else Why.AT_MAX_VCPUS if work.ready else Why.NONE_READY)
            if added > room:
                work.notes.append(f"only {room} more instance(s) within max {snapshot.max_count}")
                work.because.append(Why.AT_MAX_COUNT)
                added = room
            work.notes.append(f"{left} vCPU(s) did not fit ({full})")
            work.count += added
    elif want < before:
        excess = work.shrink(before - want) if sizing.can_shrink else before - want
        if not sizing.can_shrink:
            work.notes.append("this provider cannot remove vCPUs live")
            work.because.append(Why.CANNOT_SHRINK)
        elif excess:
            work.because.append(Why.AT_BASE_VCPUS)
        left = work.remove(excess, snapshot.min_count)
        if left:
            work.notes.append(f"{left} vCPU(s) kept (no whole instance fits in them, or at min)")
            work.because.append(Why.KEPT)
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
        count_before=snapshot.desired,
        because=tuple(work.because),
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
