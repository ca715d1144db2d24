"""The scale plan: from the instances there are, the desired count and the warm pool's size, what
to do now. Pure, so the choices are table-tested (tests/unit/test_scale_plan.py).

The policies decide *how many* instances the group should have (Kubernetes' HPA decides replicas);
this decides *which* instances move (Kubernetes' ReplicaSet ranks the pods it deletes):

* **Short:** take parked instances from the warm pool first (oldest index first), then launch.
* **Long:** stop what does not serve before what does: instances still launching or booting, or
  whose host does not answer (``unknown``), go first (newest first), then the least busy ready
  ones, drained before they stop. An instance whose launch or resume call is still running cannot
  be stopped this tick, but it is still the one to stop: it counts as a victim to come, so a
  ready, serving instance is not drained in its place.
* **Clean-up:** failed instances are terminated, and terminations that failed are retried, each
  when its own back-off allows.
* **Refill** the warm pool only when the group is where it should be and no capacity is still
  arriving: on a small host a refill boot competes for the CPU with an instance just resumed (a
  saved-pool restore took 1.3 s instead of 0.45 s with a refill booting beside it).

A vertical-first decision (``vmscale.policy.vertical``) says more than a count, and the plan then
carries it out exactly (a ``Shape``):

* **Sizes:** each ready instance it names is resized to its vCPUs, unless a call for it is in flight
  (it is resized on a later tick) or the resize back-off says wait. Resizes go first: they serve
  within a second, a launch takes seconds.
* **Named removals:** on the way down the instances it names are the victims, in its order (one
  with a call in flight is still the one to go: it counts as a victim to come). Only an excess the
  named ones cannot cover (the group changed since the decision) falls back to the ranking above.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vmscale.model import LIVE_STATES, InstanceState

S = InstanceState


@dataclass(frozen=True, slots=True)
class Member:
    """What the plan needs to know of one instance."""

    name: str
    index: int
    state: InstanceState
    pool: bool = False  # launched for, or parked in, the warm pool
    busy: bool = False  # a provider call for it is in flight
    cpu: float | None = None  # newest CPU sample, percent of its vCPUs
    retry_ready: bool = True  # its terminate back-off allows a (re)try now
    vcpus: int = 1  # its recorded size (a resize under way counts at its new size)

    @property
    def in_group(self) -> bool:
        return not self.pool and self.state in LIVE_STATES


@dataclass(frozen=True, slots=True)
class Shape:
    """What a vertical-first decision asks besides the count: sizes by name, and who goes."""

    sizes: tuple[tuple[str, int], ...] = ()  # (name, vCPUs) for the instances it resizes
    remove: tuple[str, ...] = ()  # the instances to drain and stop, in order
    reason: str = ""  # the decision's, for the event of each resize

    @property
    def empty(self) -> bool:
        return not self.sizes and not self.remove


@dataclass(frozen=True, slots=True)
class ScalePlan:
    resize: tuple[tuple[str, int], ...] = ()  # (name, vCPUs): live resizes, first
    resume: tuple[str, ...] = ()  # take from the warm pool, in this order
    launch: int = 0  # new instances for the group
    launch_pool: int = 0  # new instances for the warm pool
    drain: tuple[tuple[str, str], ...] = ()  # (name, reason): out of rotation, then stop
    stop: tuple[tuple[str, str], ...] = ()  # (name, reason): terminate (or retry a terminate) now

    @property
    def empty(self) -> bool:
        return self == ScalePlan()


def plan_scale(
    members: Iterable[Member],
    desired: int,
    pool_size: int,
    *,
    can_launch: bool,
    shape: Shape = Shape(),
    can_resize: bool = True,
) -> ScalePlan:
    ms = list(members)
    live = [m for m in ms if m.in_group]
    need = desired - len(live)
    resume: list[str] = []
    launch = 0
    drain: list[tuple[str, str]] = []
    stop: list[tuple[str, str]] = []
    if need > 0:
        parked = sorted((m for m in ms if m.pool and m.state is S.WARM and not m.busy), key=lambda m: m.index)
        resume = [m.name for m in parked[:need]]
        launch = need - len(resume) if can_launch else 0
    elif need < 0:
        for m, named in _victims(ms, -need, shape.remove):
            if m.state is S.READY:
                why = "named by the vertical-first decision" if named else "least busy ready instance"
                drain.append((m.name, f"scale-in: {why} (cpu {m.cpu or 0:.0f}%)"))
            elif m.state is S.UNKNOWN:
                stop.append((m.name, "scale-in: its host does not answer, so it serves nobody"))
            else:
                stop.append((m.name, "scale-in before it was ready"))
    going = {name for name, _ in drain + stop}
    resize = _resizes(ms, shape, going) if can_resize else ()
    for m in ms:
        if m.busy or not m.retry_ready:
            continue
        if m.state is S.FAILED:
            stop.append((m.name, "cleaning up a failed instance"))
        elif m.state is S.TERMINATING:
            stop.append((m.name, "retrying the terminate"))
    launch_pool = 0
    arriving = any(m.in_group and m.state is not S.READY for m in ms)
    if need <= 0 and not arriving and can_launch:
        pooled = sum(1 for m in ms if m.pool and m.state in (S.PENDING, S.BOOTING, S.WARM))
        launch_pool = max(0, pool_size - pooled)
    return ScalePlan(resize, tuple(resume), launch, launch_pool, tuple(drain), tuple(stop))


def _resizes(members: list[Member], shape: Shape, going: set[str]) -> tuple[tuple[str, int], ...]:
    """The sizes the shape asks for that a ready instance, free of calls, does not have yet."""
    by_name = {m.name: m for m in members}
    out = []
    for name, vcpus in shape.sizes:
        m = by_name.get(name)
        if m is None or m.pool or m.state is not S.READY or m.busy or name in going or m.vcpus == vcpus:
            continue
        out.append((name, vcpus))
    return tuple(out)


def _victims(members: list[Member], count: int, named: tuple[str, ...]) -> list[tuple[Member, bool]]:
    """The named instances first (a busy one is a victim to come), then the ranking for the rest."""
    by_name = {m.name: m for m in members if m.in_group}
    chosen = [by_name[n] for n in named if n in by_name][:count]
    left = count - len(chosen)
    ready = [(m, True) for m in chosen if not m.busy]
    if left <= 0:
        return ready
    rest = [m for m in members if m not in chosen]
    return ready + [(m, False) for m in scale_in_victims(rest, left)]


def scale_in_victims(members: list[Member], count: int) -> list[Member]:
    """Not-yet-serving instances first (newest first), then the least busy ready ones."""
    coming = [m for m in members if m.in_group and m.state is not S.READY]
    unready = sorted((m for m in coming if not m.busy), key=lambda m: -m.index)
    count -= len(coming) - len(unready)
    ready = sorted(
        (m for m in members if not m.pool and m.state is S.READY and not m.busy),
        key=lambda m: (m.cpu if m.cpu is not None else 0.0, -m.index),
    )
    return (unready + ready)[: max(0, count)]
