"""Frozen values shared by every layer: instances and their states, samples, snapshots, decisions.

Nothing here does I/O. The instance lifecycle is an explicit state machine; the allowed
transitions live in ``TRANSITIONS`` and nowhere else::

    pending ──► booting ──► ready ──► draining ──► terminating ──► gone
       │           │  ▲       │          │             ▲
       │           ▼  │       │          │             │
       │         warm─┼─► resuming       └──► failed ──┘
       │              └──────┘  (any state but gone may fail or be terminated)
       └──────────────────────────────────────►

    booting, ready, warm ──► unknown ──► (back where it was) or failed

An instance launched for the warm pool boots like any other, is parked (``warm``) once healthy, and
is taken from the pool by a resume call (``resuming``, which counts toward the group: it is capacity
already on its way) after which it is health-checked again (``booting``).

``unknown``: its host stopped answering (a dead libvirtd; the guest itself usually runs on). It is
out of rotation at once — unknown is not healthy — but still counts toward the group, so a host
that answers again within ``cluster.unreachable_after_s`` costs no replacement. Once the host is
unreachable the instance fails and is replaced under a new name; its record (and so its name and
address) stays until the host answers and the copy there is removed (see ``plan/fencing.py``). Kubernetes
has the same phase for a pod whose node stopped reporting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class InstanceState(StrEnum):
    PENDING = "pending"  # recorded in the store; the provider launch is issued or about to be
    BOOTING = "booting"  # the provider reports it exists; its health check has not passed yet
    WARM = "warm"  # booted, healthy once, then paused or saved for the warm pool; out of rotation
    RESUMING = "resuming"  # taken from the warm pool; the provider's resume call is under way
    READY = "ready"  # health check passing; in rotation (balancer / event stream)
    DRAINING = "draining"  # out of rotation; waiting for in-flight requests (up to a timeout)
    TERMINATING = "terminating"  # provider terminate issued
    GONE = "gone"  # terminated and cleaned up; kept only as history
    FAILED = "failed"  # launch, boot or health failed; will be terminated and replaced
    UNKNOWN = "unknown"  # its host does not answer: out of rotation, replaced if that lasts


S = InstanceState

TRANSITIONS: Mapping[InstanceState, frozenset[InstanceState]] = MappingProxyType(
    {
        S.PENDING: frozenset({S.BOOTING, S.FAILED, S.TERMINATING}),
        S.BOOTING: frozenset({S.READY, S.WARM, S.FAILED, S.TERMINATING, S.UNKNOWN}),
        S.WARM: frozenset({S.RESUMING, S.BOOTING, S.FAILED, S.TERMINATING, S.UNKNOWN}),
        S.RESUMING: frozenset({S.BOOTING, S.FAILED, S.TERMINATING}),
        S.READY: frozenset({S.DRAINING, S.FAILED, S.TERMINATING, S.UNKNOWN}),
        S.UNKNOWN: frozenset({S.READY, S.BOOTING, S.WARM, S.FAILED, S.TERMINATING}),
        S.DRAINING: frozenset({S.TERMINATING, S.FAILED}),
        S.TERMINATING: frozenset({S.GONE, S.FAILED}),
        S.FAILED: frozenset({S.TERMINATING, S.GONE}),
        S.GONE: frozenset(),
    }
)

# States that occupy capacity the group pays for and count towards min/max (for instances of the
# group itself, not of its warm pool). ``unknown`` counts until its host is given up on.
LIVE_STATES = frozenset({S.PENDING, S.RESUMING, S.BOOTING, S.READY, S.UNKNOWN})
# Launched (or resumed) for the group but not in rotation yet: policies count these as "unready".
UNREADY_STATES = frozenset({S.PENDING, S.RESUMING, S.BOOTING})


def can_transition(src: InstanceState, dst: InstanceState) -> bool:
    return dst in TRANSITIONS[src]


class Metric(StrEnum):
    CPU = "cpu"  # utilisation, percent of the instance's own vCPUs (0..100)
    RPS = "rps"  # requests per second served by the instance
    LATENCY_P95 = "latency_p95"  # seconds, as reported by the balancer or the client
    # Requests in progress per vCPU, from the workload's /healthz. Unlike CPU it still rises when
    # the host is so busy that a saturated instance cannot burn its full quota (its queue grows).
    INFLIGHT = "inflight"


class ExternalMetric(str):
    """The name of an external metric (an entry under ``[metrics]`` in the config, e.g. a Prometheus
    query). A ``str`` with a ``.value``, like the members of ``Metric``, so that code naming a metric
    treats both alike (``metric.value`` is the name either way)."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str.__str__(self)


MetricName = Metric | ExternalMetric
"""What a policy's ``metric`` names: a built-in metric or an external one."""


def metric_name(name: str) -> MetricName:
    """``"cpu"`` -> ``Metric.CPU``; any other name -> ``ExternalMetric(name)``."""
    return Metric(name) if is_builtin(name) else ExternalMetric(name)


BUILTIN_METRICS = frozenset(m.value for m in Metric)


def is_builtin(metric: str) -> bool:
    return metric in BUILTIN_METRICS


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of one instance (or, in ``Snapshot.group_samples``, of the group) at time
    ``t`` (epoch seconds). ``None`` means not measured. ``extra`` holds external metrics by name
    (``[[metrics]]`` entries); a name that is absent was not measured."""

    t: float
    cpu: float | None = None
    rps: float | None = None
    latency_p95: float | None = None
    inflight: float | None = None
    extra: Mapping[str, float] = field(default_factory=dict)

    def value(self, metric: str) -> float | None:
        if metric == Metric.CPU:
            return self.cpu
        if metric == Metric.RPS:
            return self.rps
        if metric == Metric.INFLIGHT:
            return self.inflight
        if metric == Metric.LATENCY_P95:
            return self.latency_p95
        return self.extra.get(metric)


@dataclass(frozen=True, slots=True)
class InstanceSnapshot:
    """What the policy layer sees of one instance."""

    name: str
    state: InstanceState
    vcpus: int = 1
    vcpu_cap: int | None = None  # the most it may grow to for now (its host is full); None: no own cap
    samples: tuple[Sample, ...] = ()  # oldest first, within the controller's history window
    launched_at: float | None = None
    ready_at: float | None = None

    def latest(self, metric: str) -> float | None:
        for s in reversed(self.samples):
            v = s.value(metric)
            if v is not None:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a policy may look at for one decision. ``now`` is epoch seconds."""

    now: float
    desired: int  # the desired count in force before this decision
    min_count: int
    max_count: int
    instances: tuple[InstanceSnapshot, ...] = ()
    # Group-level observations that are not per instance (for example the balancer's p95 latency).
    group_samples: tuple[Sample, ...] = ()
    # Why an external metric has no data this tick (query failed, empty result, stale), by metric
    # name. A metric named here is treated as missing whatever older samples say, so policies hold.
    metric_notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> tuple[InstanceSnapshot, ...]:
        return tuple(i for i in self.instances if i.state is InstanceState.READY)


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    NONE = "none"


class ReasonCode(StrEnum):
    """Why a policy (or the set) proposes what it does, for machines: beside the prose ``reason``,
    the way the Kubernetes HPA sets conditions (AbleToScale, ScalingActive, ScalingLimited)."""

    ABOVE_TARGET = "above_target"  # target tracking asks for more
    BELOW_TARGET = "below_target"  # ...or for fewer
    WITHIN_TOLERANCE = "within_tolerance"  # inside the dead band (or a conservative correction holds)
    ABOVE_UPPER = "above_upper"  # threshold/step: above the upper bound for enough samples
    BELOW_LOWER = "below_lower"  # ...below the lower bound
    STREAK_SHORT = "streak_short"  # beyond a bound, not for enough samples yet
    WITHIN_BOUNDS = "within_bounds"  # between the bounds
    NO_DATA = "no_data"  # the metric has no value: hold
    STABILIZED = "stabilized"  # the stabilization window holds the count
    RATE_LIMITED = "rate_limited"  # the move was cut by a rate limit
    COOLDOWN = "cooldown"  # the move waits for a cooldown
    LIMITED_MAX = "limited_max"  # ScalingLimited: at (or cut to) max
    LIMITED_MIN = "limited_min"  # ScalingLimited: at (or cut to) min
    SCHEDULE_FLOOR = "schedule_floor"  # a schedule's minimum sets the count
    SCALE_IN_VETOED = "scale_in_vetoed"  # a policy wants fewer, another does not agree
    NO_OPINION = "no_opinion"  # the policy abstains (a schedule outside its windows)
    MANUAL = "manual"  # a person set the count


@dataclass(frozen=True, slots=True)
class Figures:
    """The numbers behind a proposal, typed: ``metric`` is what ``observed`` measures (its unit is
    the metric's: percent for cpu, seconds for latency); None means not part of this decision."""

    metric: str | None = None
    observed: float | None = None
    target: float | None = None
    upper: float | None = None
    lower: float | None = None
    ready: int | None = None
    recommendation: int | None = None
    floor: int | None = None
    highest_proposal: int | None = None  # the set's: the most any policy proposed, whoever won

    def to_dict(self) -> dict[str, Any]:
        """The figures that are set, for the decision log and the event stream."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's answer: how many instances should run, and why, in words a person can check."""

    desired: int
    direction: Direction
    reason: str
    policy: str
    current: int
    figures: Figures = field(default_factory=Figures)
    code: ReasonCode = ReasonCode.NO_OPINION

    def to_dict(self) -> dict[str, Any]:
        return {
            "desired": self.desired,
            "direction": self.direction.value,
            "reason": self.reason,
            "code": self.code.value,
            "policy": self.policy,
            "current": self.current,
            "figures": self.figures.to_dict(),
        }


def direction_of(current: int, desired: int) -> Direction:
    if desired > current:
        return Direction.UP
    if desired < current:
        return Direction.DOWN
    return Direction.NONE
