"""The policy contract: an observation in, a proposal and the next state out. No I/O, no clock.

A tick of the controller (or of the simulator) goes::

    Snapshot ──observe()──► Observation ──Policy.decide(obs, state, events)──► (Proposal, PolicyState)
                                    (each policy)            ──combine──► Decision

``observe`` reduces the per-instance snapshot to the few sums the arithmetic needs (count, total,
missing, newest sample time per metric), for the built-in metrics and for every external metric
(a ``[[metrics]]`` entry, e.g. a Prometheus query) the snapshot carries. The controller builds it
from a real ``Snapshot``; the simulator builds the identical value directly in O(1), which is what
lets a 1,000-instance day run in seconds while still executing exactly the same policy code.

Everything a policy remembers between ticks (consecutive-sample counters, stabilization
recommendations) is in the frozen ``PolicyState`` it returns; scale events used for cooldowns and
rate limits are kept once for the whole set and passed in. Replaying the same observations from the
same state therefore gives the same decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from vmscale.model import (
    UNREADY_STATES,
    ExternalMetric,
    Figures,
    InstanceState,
    Metric,
    MetricName,
    ReasonCode,
    Sample,
    Snapshot,
    metric_name,
)

ScaleEvent = tuple[float, int]
"""(t, change in desired count) of a change the policy set decided; positive = scale-up."""


# Metrics that are a use of the instance's own capacity (per vCPU): across instances of different
# sizes their group figure is the sum of use over the sum of capacity, as the HPA computes a
# resource utilisation (sum of usage / sum of requests). Requests per second is a plain
# per-instance figure and, as the HPA's pods metrics, is averaged per instance.
CAPACITY_METRICS = frozenset({Metric.CPU, Metric.INFLIGHT})


@dataclass(frozen=True, slots=True)
class MetricView:
    """One metric over the group. For per-instance metrics the sums run over *ready* instances.

    ``weighted_total``/``capacity``/``missing_capacity`` are set for capacity metrics (cpu, in
    flight per vCPU): each value times the instance's vCPUs, and the vCPUs summed. Left at None
    (the simulator's views, rps, latency, external metrics), every instance weighs one.
    """

    total: float = 0.0  # sum of the newest value of every ready instance that reported one
    reporting: int = 0  # ready instances with a value
    missing: int = 0  # ready instances without one
    t: float | None = None  # newest sample time seen (None: nothing reported)
    weighted_total: float | None = None  # sum of value x vCPUs over the reporting instances
    capacity: float | None = None  # vCPUs of the reporting instances
    missing_capacity: float | None = None  # vCPUs of the ready instances without a value
    group_level: bool = False  # one figure for the whole group (an external per-group query)
    note: str = ""  # why there is no data, when the source said (query failed, empty result)

    @property
    def weighted(self) -> bool:
        return self.capacity is not None

    @property
    def use(self) -> float:
        """Sum of use: value x vCPUs for a capacity metric, the plain sum otherwise."""
        return self.weighted_total if self.weighted_total is not None else self.total

    @property
    def cap(self) -> float:
        """What the use is divided by: vCPUs for a capacity metric, the reporting count otherwise."""
        return self.capacity if self.capacity is not None else float(self.reporting)

    @property
    def missing_cap(self) -> float:
        return self.missing_capacity if self.missing_capacity is not None else float(self.missing)

    @property
    def mean(self) -> float | None:
        """The group figure: sum of use over sum of capacity (a per-instance mean when unweighted)."""
        if not self.reporting:
            return None
        cap = self.cap
        return self.use / cap if cap > 0 else self.total / self.reporting


@dataclass(frozen=True, slots=True)
class Observation:
    """What every policy sees of one tick."""

    now: float
    desired: int  # the count in force before this decision ("current")
    min_count: int
    max_count: int
    ready: int  # instances in rotation
    unready: int  # launched or resumed but not ready yet (pending, resuming, booting)
    metrics: Mapping[MetricName, MetricView] = field(default_factory=dict)
    unready_capacity: float | None = None  # vCPUs of the unready instances (None: one per instance)

    @property
    def unready_cap(self) -> float:
        return self.unready_capacity if self.unready_capacity is not None else float(self.unready)

    def metric(self, metric: str) -> MetricView:
        return self.metrics.get(metric_name(metric), _EMPTY)


_EMPTY = MetricView()


def observe(snapshot: Snapshot, *, vcpu_unit: int = 0) -> Observation:
    """Reduce a snapshot to an ``Observation``: one pass over the instances.

    Per-instance metrics use each ready instance's newest sample. ``latency_p95`` is group-level:
    the newest ``snapshot.group_samples`` value (the balancer's or client's p95); when there is none,
    the mean of the ready instances' own p95 values.

    External metrics (``Sample.extra``) are read fresh every tick, so only the *newest* sample of
    each ready instance counts (a series that vanished is missing at once, never an old value); a
    name in the group samples is one group-level figure. A name in ``snapshot.metric_notes`` has
    no data this tick, whatever older samples say: its view is empty and carries the note.

    ``vcpu_unit`` > 0 counts capacity instead of instances (vertical-first, ``policy.vertical``):
    every instance counts as its vCPUs (ready, starting, reporting, missing), and a per-instance
    figure (rps) is read per ``vcpu_unit`` vCPUs, the size of a new instance, so that its target
    keeps meaning "per instance of the template's size".
    """
    ready = unready = unready_vcpus = 0
    accs = {m: _Acc(vcpu_unit) for m in (Metric.CPU, Metric.RPS, Metric.INFLIGHT, Metric.LATENCY_P95)}
    extra = _Accs()
    for inst in snapshot.instances:
        weight = inst.vcpus if vcpu_unit else 1
        if inst.state is InstanceState.READY:
            ready += weight
            for metric, acc in accs.items():
                acc.add(*_latest(inst.samples, metric), vcpus=inst.vcpus)
            extra.add_instance(inst.samples[-1] if inst.samples else None)
        elif inst.state in UNREADY_STATES:
            unready += weight
            unready_vcpus += inst.vcpus
    views: dict[MetricName, MetricView] = {m: a.view(weighted=m in CAPACITY_METRICS) for m, a in accs.items()}
    views.update(extra.views())
    for s in reversed(snapshot.group_samples):
        if s.latency_p95 is not None:
            views[Metric.LATENCY_P95] = MetricView(s.latency_p95, 1, 0, s.t)
            break
    for s in reversed(snapshot.group_samples):
        for name, value in s.extra.items():
            if name not in views:
                views[ExternalMetric(name)] = MetricView(value, 1, 0, s.t, group_level=True)
    for name, note in snapshot.metric_notes.items():
        key = metric_name(name)
        views[key] = MetricView(missing=ready, group_level=views.get(key, _EMPTY).group_level, note=note)
    return Observation(
        now=snapshot.now,
        desired=snapshot.desired,
        min_count=snapshot.min_count,
        max_count=snapshot.max_count,
        ready=ready,
        unready=unready,
        metrics=views,
        unready_capacity=float(unready_vcpus),
    )


class _Acc:
    """Running sums for one metric while ``observe`` walks the instances.

    ``vcpu_unit`` 0 counts instances; > 0 counts vCPUs (see ``observe``)."""

    __slots__ = ("capacity", "count", "missing", "missing_capacity", "t", "total", "unit", "weighted")

    def __init__(self, vcpu_unit: int = 0) -> None:
        self.unit = vcpu_unit
        self.total = 0.0
        self.weighted = 0.0
        self.capacity = 0.0
        self.count = 0
        self.missing = 0
        self.missing_capacity = 0.0
        self.t: float | None = None

    def add(self, value: float | None, t: float, *, vcpus: int = 1) -> None:
        weight = vcpus if self.unit else 1
        if value is None:
            self.missing += weight
            self.missing_capacity += vcpus
            return
        # Counted in vCPUs, a per-instance figure is read per unit of capacity.
        self.total += value * self.unit if self.unit else value
        self.weighted += value * vcpus
        self.capacity += vcpus
        self.count += weight
        if self.t is None or t > self.t:
            self.t = t

    def view(self, *, weighted: bool) -> MetricView:
        if not weighted:
            return MetricView(self.total, self.count, self.missing, self.t)
        return MetricView(
            self.total, self.count, self.missing, self.t, self.weighted, self.capacity, self.missing_capacity
        )


class _Accs:
    """Running sums for the external metrics of the ready instances' newest samples. A name is
    known once any instance reports it; instances seen before that count as missing for it."""

    def __init__(self) -> None:
        self.accs: dict[str, _Acc] = {}
        self.seen = 0

    def add_instance(self, newest: Sample | None) -> None:
        values = newest.extra if newest is not None else {}
        for name in values:
            if name not in self.accs:
                self.accs[name] = acc = _Acc()
                acc.missing = self.seen
        for name, acc in self.accs.items():
            acc.add(values.get(name), newest.t if newest is not None else 0.0)
        self.seen += 1

    def views(self) -> dict[MetricName, MetricView]:
        return {ExternalMetric(n): MetricView(a.total, a.count, a.missing, a.t) for n, a in self.accs.items()}


def _latest(samples: tuple[Any, ...], metric: str) -> tuple[float | None, float]:
    for s in reversed(samples):
        v = s.value(metric)
        if v is not None:
            return v, s.t
    return None, 0.0


@dataclass(frozen=True, slots=True)
class Proposal:
    """One policy's vote. ``desired=None`` abstains; ``floor`` is a minimum it insists on (schedule);
    ``code`` says why for machines, ``reason`` for people."""

    desired: int | None
    reason: str
    floor: int = 0
    figures: Figures = field(default_factory=Figures)
    code: ReasonCode = ReasonCode.NO_OPINION


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What one policy carries from tick to tick. Every field is plain data (see ``to_dict``)."""

    up_streak: int = 0  # consecutive samples beyond the upper bound
    down_streak: int = 0  # consecutive samples beyond the lower bound
    last_sample_t: float | None = None  # newest sample already counted (a tick without news counts once)
    # Stabilization: (t, recommendation) kept as monotonic queues, oldest first. ``up_recs`` has
    # increasing values (its head is the window's minimum), ``down_recs`` decreasing (head = maximum).
    up_recs: tuple[tuple[float, int], ...] = ()
    down_recs: tuple[tuple[float, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "up_streak": self.up_streak,
            "down_streak": self.down_streak,
            "last_sample_t": self.last_sample_t,
            "up_recs": [list(r) for r in self.up_recs],
            "down_recs": [list(r) for r in self.down_recs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicyState:
        return cls(
            up_streak=int(d.get("up_streak", 0)),
            down_streak=int(d.get("down_streak", 0)),
            last_sample_t=None if d.get("last_sample_t") is None else float(d["last_sample_t"]),
            up_recs=tuple((float(t), int(n)) for t, n in d.get("up_recs", ())),
            down_recs=tuple((float(t), int(n)) for t, n in d.get("down_recs", ())),
        )


class Policy(Protocol):
    """A pure scaling rule. ``horizon_s`` is how far back it needs the set's scale events."""

    name: str
    kind: str
    horizon_s: float

    def decide(
        self, obs: Observation, state: PolicyState, events: tuple[ScaleEvent, ...]
    ) -> tuple[Proposal, PolicyState]: ...


def count_streaks(state: PolicyState, view: MetricView, above: bool, below: bool) -> PolicyState:
    """Extend or reset the consecutive-sample streaks, counting each new group sample once (a tick
    that sees the same sample time again does not lengthen a streak)."""
    if view.t is not None and state.last_sample_t is not None and view.t <= state.last_sample_t:
        return state
    return replace(
        state,
        up_streak=state.up_streak + 1 if above else 0,
        down_streak=state.down_streak + 1 if below else 0,
        last_sample_t=view.t,
    )


def clamp(n: int, obs: Observation) -> int:
    return max(obs.min_count, min(obs.max_count, n))


def in_cooldown(
    obs: Observation, events: tuple[ScaleEvent, ...], up: bool, up_s: float, down_s: float
) -> str:
    """Why a move is blocked by a cooldown, or "" if it is not.

    Scale-up waits ``up_s`` after the last scale-up; scale-down waits ``down_s`` after the last scale
    event in either direction (capacity just added should get a chance to show its effect).
    """
    for t, delta in reversed(events):
        age = obs.now - t
        if up and delta > 0 and age < up_s:
            return f"scale-up cooldown ({age:g} s since the last scale-up < {up_s:g} s)"
        if not up and age < down_s:
            return f"scale-down cooldown ({age:g} s since the last scale event < {down_s:g} s)"
    return ""


def fmt(metric: str, value: float, *, exact: bool = False) -> str:
    """A metric value in its unit, the way reasons print it (``exact``: a configured figure, as given).
    External metrics have no unit vmscale knows: their values print as plain numbers."""
    if metric == Metric.CPU:
        return f"{value:g}%" if exact else f"{value:.1f}%"
    if metric == Metric.RPS:
        return f"{value:g} rps" if exact else f"{value:.1f} rps"
    if metric == Metric.INFLIGHT:
        return (f"{value:g}" if exact else f"{value:.2f}") + " in flight per vCPU"
    if metric == Metric.LATENCY_P95:
        return f"{value:g} s" if exact else f"{value:.3f} s"
    return f"{value:g}" if exact else f"{value:.4g}"


def no_data(metric: str, view: MetricView) -> str:
    """The reason's words when a metric has no value: whose samples are missing, and why if known."""
    where = "the group" if view.group_level else "ready instances"
    return f"no {metric} samples from {where}" + (f" ({view.note})" if view.note else "")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
