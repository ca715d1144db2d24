"""The metric-source role: something that, asked for a group's instances, answers with values.

    reading = source.read(["web-1", "web-2"])    # bounded by the source's timeout, never raises
    reading.instances -> {"web-1": 3.0, ...}     # per-instance sources
    reading.group     -> 12.5                    # per-group sources
    reading.note      -> "" or why there is no data

A source never raises for a failed query: it returns a reading with ``failed`` set and a ``note``
a person can act on, because a metric that cannot be read must make the policies *hold* (never
scale in on missing data), not stop the controller. ``gather`` turns the readings of one tick
into what the snapshot carries: values in ``Sample.extra`` and the notes in
``Snapshot.metric_notes``.

Prometheus (``prometheus.py``) is the first source; the provider's CPU and the balancer's traffic
are meant to take the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

from vmscale.event_kinds import FieldsEvent
from vmscale.model import Sample


@dataclass(frozen=True, slots=True)
class Reading:
    """One answer of one source. ``t`` is when it came (epoch seconds, the controller's clock)."""

    metric: str
    t: float
    per_instance: bool
    group: float | None = None
    instances: Mapping[str, float] = field(default_factory=dict)
    note: str = ""  # why there is (some) data missing; "" = complete
    failed: bool = False  # the source could not answer (unreachable, bad query, bad answer)
    duration_s: float = 0.0

    @property
    def has_data(self) -> bool:
        return bool(self.instances) if self.per_instance else self.group is not None


class MetricSource(Protocol):
    """One external metric. ``read`` is bounded by ``timeout_s`` and returns, never raises."""

    metric: str
    per_instance: bool
    timeout_s: float
    stale_after_s: float

    def read(self, instances: Sequence[str]) -> Reading: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class MetricSourceStatus(FieldsEvent):
    """A source started failing (or failed differently), or answers again after failing."""

    TYPE: ClassVar[str] = "metric_source"
    metric: str
    status: Literal["failing", "recovered"]
    error: str = ""
    failed_for_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ExternalMetrics:
    """The external metrics of one tick, shaped for the snapshot."""

    per_instance: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # instance -> metric -> v
    group: Mapping[str, float] = field(default_factory=dict)  # metric -> value
    notes: Mapping[str, str] = field(default_factory=dict)  # metric -> why it has no data

    def instance_extra(self, name: str) -> Mapping[str, float]:
        """What goes into ``Sample.extra`` of instance ``name`` this tick."""
        return self.per_instance.get(name, {})

    def group_sample(self, t: float) -> Sample | None:
        """The group-level values as one ``Sample`` for ``Snapshot.group_samples`` (None if none)."""
        return Sample(t=t, extra=dict(self.group)) if self.group else None


def gather(readings: Iterable[Reading]) -> ExternalMetrics:
    """Readings -> snapshot shape. A reading without data becomes a note (so policies hold); a
    per-instance reading with some instances missing keeps its values (those instances count as
    missing, the HPA's conservative rule applies)."""
    per_instance: dict[str, dict[str, float]] = {}
    group: dict[str, float] = {}
    notes: dict[str, str] = {}
    for r in readings:
        if not r.has_data:
            notes[r.metric] = r.note or "no data"
        elif r.per_instance:
            for name, value in r.instances.items():
                per_instance.setdefault(name, {})[r.metric] = value
        elif r.group is not None:
            group[r.metric] = r.group
    return ExternalMetrics(per_instance, group, notes)
