"""The instance table, and the only place an instance's lifecycle state changes.

``Fleet`` owns every ``Instance`` record of one group. A state change goes through ``Fleet.move``
(checked against ``vmscale.model.TRANSITIONS``: an illegal move is a bug, so it raises) and every
change is handed, as one ``InstanceTransition``, to the listeners wired at start-up: the store
records it, the event bus publishes it, the metrics forget a gone instance's series. Nothing else
writes those, so a state seen in the API, the database and the log is always the same state.

The other fields of a record (what the provider said, health counters, samples, timers) are
written by the reconcile step that measures them; they never change what the instance *is*. The
one exception is its size: a live resize changes ``Facts.vcpus`` through ``Fleet.resized``, which
hands the listeners an ``InstanceResized`` the same way (the store updates the row, the bus
publishes it), so the size seen in the API, the database and the log is one size too.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import urlsplit

from vmscale.controller.backoff import Backoff
from vmscale.event_kinds import NO_STATE, InstanceResized, InstanceTransition
from vmscale.model import LIVE_STATES, InstanceSnapshot, InstanceState, Sample, can_transition
from vmscale.store import InstanceRow

S = InstanceState


class IllegalTransition(RuntimeError):
    pass


class Purpose(StrEnum):
    GROUP = "group"  # serves (or will serve) the group
    POOL = "pool"  # launched for, or parked in, the warm pool


@dataclass(frozen=True, slots=True)
class Facts:
    """What the provider reported when it made (or found) the instance."""

    endpoint: str = ""
    vcpus: int = 1
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def host_port(self) -> tuple[str, int] | None:
        if not self.endpoint:
            return None
        parts = urlsplit(self.endpoint)
        if parts.hostname is None or parts.port is None:
            return None
        return parts.hostname, parts.port


@dataclass(frozen=True, slots=True)
class Transit:
    """A live resize on its way: recorded (``Facts.vcpus`` is ``vcpus_to`` already, so it counts as
    capacity) but not yet taken by the workload. Monotonic times."""

    vcpus_from: int
    vcpus_to: int
    started: float  # when the resize was recorded (the deadline for the workload counts from it)
    wanted_at: float | None = None  # the decision it answers (decision-to-serving)

    @property
    def serving_vcpus(self) -> int:
        """What the workload serves with meanwhile: the old size growing, the new one shrinking."""
        return min(self.vcpus_from, self.vcpus_to)


@dataclass(frozen=True, slots=True)
class GrowthCap:
    """Its host had no headroom for more vCPUs (``NoHeadroomError``): until ``until``, vertical-first
    treats ``vcpus`` as this instance's maximum and adds instances instead (see ``resizes.py``)."""

    vcpus: int
    until: float


@dataclass(slots=True)
class Timers:
    """Deadlines and durations, all on the monotonic clock."""

    terminate: Backoff  # retries of a failing terminate call
    launched: float = 0.0  # when the launch (or adoption) started: the boot timeout counts from it
    wanted_at: float | None = None  # the scale-up this instance answers (decision-to-ready histogram)
    drain_started: float | None = None
    resize: Transit | None = None  # a live resize the workload has not taken yet
    growth_cap: GrowthCap | None = None  # its host refused its growth: not grown past this for now


@dataclass(slots=True)
class Health:
    failures: int = 0  # consecutive failed probes while ready
    inflight: int | None = None  # requests in progress, from the workload's own health answer
    cpus: int | None = None  # CPUs the workload serves with, from its health answer (None: not said)


class Instance:
    """One instance's record. Its ``state`` is read-only outside this module: see ``Fleet.move``."""

    __slots__ = (
        "_state",
        "facts",
        "health",
        "index",
        "launched_at",
        "name",
        "purpose",
        "ready_at",
        "samples",
        "timers",
    )

    def __init__(
        self,
        name: str,
        index: int,
        state: InstanceState,
        timers: Timers,
        *,
        purpose: Purpose = Purpose.GROUP,
        facts: Facts | None = None,
        launched_at: float | None = None,
        ready_at: float | None = None,
    ) -> None:
        self.name = name
        self.index = index
        self._state = state
        self.purpose = purpose
        self.facts = facts or Facts()
        self.timers = timers
        self.health = Health()
        self.launched_at = launched_at  # epoch seconds, for people
        self.ready_at = ready_at
        self.samples: collections.deque[Sample] = collections.deque(maxlen=4096)

    @property
    def state(self) -> InstanceState:
        return self._state

    @property
    def in_group(self) -> bool:
        """Counts toward the group's size (``actual``): live, including on its way from the pool."""
        return self.purpose is Purpose.GROUP and self._state in LIVE_STATES

    @property
    def serving_vcpus(self) -> int:
        """The vCPUs it serves with now (a resize in transit has not arrived yet): its balancer weight."""
        transit = self.timers.resize
        return transit.serving_vcpus if transit is not None else self.facts.vcpus

    def latest_cpu(self) -> float | None:
        for s in reversed(self.samples):
            if s.cpu is not None:
                return s.cpu
        return None

    def snapshot(self, since: float) -> InstanceSnapshot:
        return InstanceSnapshot(
            name=self.name,
            state=self._state,
            vcpus=self.facts.vcpus,
            vcpu_cap=cap.vcpus if (cap := self.timers.growth_cap) is not None else None,
            samples=tuple(s for s in self.samples if s.t >= since),
            launched_at=self.launched_at,
            ready_at=self.ready_at,
        )

    def row(self, group: str) -> InstanceRow:
        return InstanceRow(
            name=self.name,
            group=group,
            index=self.index,
            state=self._state.value,
            endpoint=self.facts.endpoint,
            vcpus=self.facts.vcpus,
            warm=self.purpose is Purpose.POOL,
            launched_at=self.launched_at,
            ready_at=self.ready_at,
            details=dict(self.facts.details),
        )


FleetChange = InstanceTransition | InstanceResized
Listener = Callable[[Instance, FleetChange], None]


@dataclass(frozen=True, slots=True)
class Counts:
    """How many instances are in each state, and the figures everyone asks for."""

    by_state: Mapping[str, int]
    actual: int  # counting toward the group (see ``Instance.in_group``)
    ready: int
    warm: int
    vcpus: int = 0  # of the instances counted in ``actual``


class Fleet:
    def __init__(self, listeners: tuple[Listener, ...] = ()) -> None:
        self._table: dict[str, Instance] = {}
        self._listeners = list(listeners)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def __iter__(self) -> Iterator[Instance]:
        return iter(list(self._table.values()))

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def get(self, name: str) -> Instance | None:
        return self._table.get(name)

    def by_index(self) -> list[Instance]:
        return sorted(self._table.values(), key=lambda i: i.index)

    def free_index(self) -> int:
        used = {i.index for i in self._table.values()}
        n = 1
        while n in used:
            n += 1
        return n

    def add(self, inst: Instance, reason: str, *, src: str = NO_STATE) -> None:
        """A record that did not exist: a launch requested, or an orphan found (``src`` says which)."""
        if inst.name in self._table:
            raise IllegalTransition(f"{inst.name} is already in the table")
        self._table[inst.name] = inst
        self._notify(inst, _change(inst, src, inst.state.value, reason))

    def adopt(self, inst: Instance, reason: str) -> None:
        """A record that exists already (restart recovery): announced, not re-recorded."""
        self._table[inst.name] = inst
        self._notify(inst, _change(inst, inst.state.value, inst.state.value, reason))

    def move(self, inst: Instance, dst: InstanceState, reason: str) -> None:
        src = inst.state
        if src is dst:
            return
        if not can_transition(src, dst):
            raise IllegalTransition(f"{inst.name}: {src.value} -> {dst.value} is not an allowed transition")
        inst._state = dst
        if dst is S.GONE:
            self._table.pop(inst.name, None)
        self._notify(inst, _change(inst, src.value, dst.value, reason))

    def resized(self, inst: Instance, change: InstanceResized) -> None:
        """A live resize moved on (see ``InstanceResized``): the record takes the size it says.

        Its samples per vCPU (CPU percent, in flight per vCPU) are re-expressed in the new size: the
        same demand on more vCPUs is a smaller share of each, so a policy weighing the instance by its
        new size reads the load it had, not that load times the growth (which asked for yet more)."""
        before, after = inst.facts.vcpus, change.vcpus
        if after != before:
            inst.facts = Facts(inst.facts.endpoint, after, inst.facts.details)
            ratio = before / after
            for i, s in enumerate(inst.samples):
                inst.samples[i] = replace(
                    s,
                    cpu=None if s.cpu is None else s.cpu * ratio,
                    inflight=None if s.inflight is None else s.inflight * ratio,
                )
        self._notify(inst, change)

    def take_from_pool(self, inst: Instance, reason: str) -> None:
        """A parked instance joins the group: its purpose and its state change in one record."""
        inst.purpose = Purpose.GROUP
        self.move(inst, S.RESUMING, reason)

    def counts(self) -> Counts:
        by_state = {s.value: 0 for s in S if s is not S.GONE}
        actual = vcpus = 0
        for inst in self._table.values():
            by_state[inst.state.value] += 1
            actual += inst.in_group
            vcpus += inst.facts.vcpus if inst.in_group else 0
        return Counts(by_state, actual, by_state[S.READY.value], by_state[S.WARM.value], vcpus)

    def _notify(self, inst: Instance, change: FleetChange) -> None:
        for listener in self._listeners:
            listener(inst, change)


def _change(inst: Instance, src: str, dst: str, reason: str) -> InstanceTransition:
    host = inst.facts.details.get("host", "")
    return InstanceTransition(inst.name, src, dst, reason, inst.facts.endpoint, host)
