"""The kinds of event the controller publishes, one frozen dataclass each.

Producers build these values; the event bus turns them into the wire form (``Event.data``, the SSE
stream, the JSONL log) with ``to_dict``; consumers that read a log back (the report, the CLI, test
fakes) get the same values again with ``parse``. The dictionary keys are therefore spelled once, here.

=============  =====================  =================================================================
``type``       class                  when
=============  =====================  =================================================================
``instance``   ``InstanceTransition``  an instance changed lifecycle state (or appeared as an orphan)
``resize``     ``InstanceResized``     a live resize started, failed, reached the workload, or was found
``decision``   ``DecisionApplied``     the desired count changed, or automatic scaling was paused/resumed
``tick``       ``TickSummary``         once per full reconcile tick: counts, per-instance CPU, traffic
``endpoints``  ``EndpointsChanged``    the set of ready endpoints changed (clients that balance follow it)
``error``      ``ErrorReported``       a provider, balancer or store call failed (reported, not fatal)
=============  =====================  =================================================================

The integrations publish kinds of their own the same way, each beside its producer, their wire
form simply their fields (``FieldsEvent``): ``metric_source`` (``MetricSourceStatus``), ``hook``
(``HookCalled``), ``webhook`` (``WebhookDelivery``), ``original_client``
(``OriginalClientNotified``) and ``file_sd`` (``FileSdWritten``); they get a ``Publish`` callable
(``EventBus.publish``) and never see the bus. So does the controller's ``golden``
(``GoldenChanged``, ``controller/golden.py``): a clone group's golden snapshot is being made, is
ready, or could not be made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

NO_STATE = "(none)"  # the "from" of an instance record that did not exist before
UNKNOWN_STATE = "(unknown)"  # the "from" of an orphan found at the provider


class EventKind(Protocol):
    TYPE: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...


Publish = Callable[[EventKind], object]
"""What a producer that must not know the bus is given: ``EventBus.publish``, or a list's
``append`` in tests."""


class FieldsEvent:
    """Base of a frozen dataclass event whose wire form is its fields, as they are."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast(Any, self))


def discard(event: EventKind) -> None:
    """A ``Publish`` for when nobody listens."""


@dataclass(frozen=True, slots=True)
class InstanceTransition:
    TYPE: ClassVar[str] = "instance"
    name: str
    src: str
    dst: str
    reason: str
    endpoint: str = ""
    host: str = ""  # the libvirt host it runs on, for a group over several hosts

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "from": self.src,
            "to": self.dst,
            "reason": self.reason,
            "endpoint": self.endpoint,
        }
        if self.host:
            out["host"] = self.host
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InstanceTransition:
        return cls(
            str(d["name"]),
            str(d["from"]),
            str(d["to"]),
            str(d.get("reason", "")),
            str(d.get("endpoint", "")),
            str(d.get("host", "")),
        )


class ResizeStage:
    """Where a live resize is (``InstanceResized.stage``)."""

    STARTED = "started"  # recorded; the provider call is under way (the vCPUs count from now)
    SERVING = "serving"  # the workload reports the new size (``/healthz`` ``cpus``): capacity arrived
    FAILED = "failed"  # the provider refused or failed: the instance keeps ``vcpus_from``
    OBSERVED = "observed"  # the provider reports another size than recorded (changed from outside)


@dataclass(frozen=True, slots=True)
class InstanceResized:
    """A live resize of one instance. ``seconds`` on ``serving``: from the decision it answers."""

    TYPE: ClassVar[str] = "resize"
    name: str
    stage: str
    vcpus_from: int
    vcpus_to: int
    reason: str
    seconds: float | None = None

    @property
    def vcpus(self) -> int:
        """The instance's vCPUs once this is recorded (a failed resize leaves the old count)."""
        return self.vcpus_from if self.stage == ResizeStage.FAILED else self.vcpus_to

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage,
            "from": self.vcpus_from,
            "to": self.vcpus_to,
            "reason": self.reason,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InstanceResized:
        seconds = d.get("seconds")
        return cls(
            str(d["name"]),
            str(d["stage"]),
            int(d["from"]),
            int(d["to"]),
            str(d.get("reason", "")),
            None if seconds is None else float(seconds),
        )


@dataclass(frozen=True, slots=True)
class DecisionApplied:
    """A change a person or the autoscaler made. ``action`` is ``scale``, ``paused`` or ``resumed``;
    ``code`` is a machine-readable reason (see ``vmscale.model.ReasonCode``) beside the prose."""

    TYPE: ClassVar[str] = "decision"
    desired: int
    previous: int
    direction: str
    reason: str
    policy: str
    actor: str
    code: str = ""
    action: str = "scale"
    figures: Mapping[str, Any] = field(default_factory=dict)
    # Vertical-first: where the capacity went and why, for machines ("resize-up", "add/at-max-vcpus";
    # ``vmscale.policy.vertical.CapacityPlan.placement``); "" for a horizontal decision.
    placement: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "desired": self.desired,
            "previous": self.previous,
            "current": self.previous,
            "direction": self.direction,
            "reason": self.reason,
            "code": self.code,
            "placement": self.placement,
            "policy": self.policy,
            "actor": self.actor,
            "applied": True,
            "figures": dict(self.figures),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecisionApplied:
        if d.get("applied") is False:  # a proposal that was logged but not applied is not one of these
            raise ValueError("not applied")
        previous = d.get("previous", d.get("current", 0))
        return cls(
            desired=int(d.get("desired", 0)),
            previous=int(previous if previous is not None else 0),
            direction=str(d.get("direction", "none")),
            reason=str(d.get("reason", "")),
            policy=str(d.get("policy", "")),
            actor=str(d.get("actor", "")),
            code=str(d.get("code", "")),
            action=str(d.get("action", "scale")),
            placement=str(d.get("placement", "")),
            figures=dict(d.get("figures") or {}),
        )


@dataclass(frozen=True, slots=True)
class InstanceBrief:
    state: str
    cpu: float | None = None  # percent of its own vCPUs


@dataclass(frozen=True, slots=True)
class TickSummary:
    TYPE: ClassVar[str] = "tick"
    desired: int
    actual: int
    ready: int
    warm: int
    instances: Mapping[str, InstanceBrief] = field(default_factory=dict)
    latency_p95_s: float | None = None
    rps: float | None = None
    vcpus: int | None = None  # of the instances counted in ``actual`` (what the group pays for)

    def to_dict(self) -> dict[str, Any]:
        return {
            "desired": self.desired,
            "actual": self.actual,
            "ready": self.ready,
            "warm": self.warm,
            "vcpus": self.vcpus,
            "instances": {n: {"state": b.state, "cpu": b.cpu} for n, b in self.instances.items()},
            "latency_p95_s": self.latency_p95_s,
            "rps": self.rps,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TickSummary:
        insts = d.get("instances") or {}
        return cls(
            desired=int(d.get("desired", 0)),
            actual=int(d.get("actual", 0)),
            ready=int(d.get("ready", 0)),
            warm=int(d.get("warm", 0)),
            instances={
                str(n): InstanceBrief(str(b.get("state", "")), b.get("cpu")) for n, b in insts.items()
            },
            latency_p95_s=d.get("latency_p95_s"),
            rps=d.get("rps"),
            vcpus=None if d.get("vcpus") is None else int(d["vcpus"]),
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class EndpointsChanged:
    TYPE: ClassVar[str] = "endpoints"
    endpoints: tuple[Endpoint, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"endpoints": [{"name": e.name, "url": e.url} for e in self.endpoints]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EndpointsChanged:
        return cls(tuple(Endpoint(str(e["name"]), str(e["url"])) for e in d.get("endpoints") or ()))


@dataclass(frozen=True, slots=True)
class ErrorReported:
    TYPE: ClassVar[str] = "error"
    where: str
    message: str
    instance: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "message": self.message, "instance": self.instance}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorReported:
        inst = d.get("instance")
        return cls(str(d.get("where", "")), str(d.get("message", "")), None if inst is None else str(inst))


KINDS: Mapping[str, Any] = {
    k.TYPE: k
    for k in (
        InstanceTransition,
        InstanceResized,
        DecisionApplied,
        TickSummary,
        EndpointsChanged,
        ErrorReported,
    )
}


def parse(type_: str, data: Mapping[str, Any]) -> EventKind | None:
    """The typed value of one logged event, or None for a type this version does not know (or a
    record too damaged to read: logs are read tolerantly)."""
    kind = KINDS.get(type_)
    if kind is None:
        return None
    try:
        return kind.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Logged(Generic[K]):
    """One event read back from a log (or an SSE stream): its time and its typed value."""

    t: float
    kind: K


def read_logged(events: Iterable[Mapping[str, Any]], kind: type[K]) -> list[Logged[K]]:
    """The events of one kind in a log, typed and sorted by time. Lines that are not well formed (no
    numeric time, a damaged payload) are skipped: logs are read tolerantly."""
    type_ = getattr(kind, "TYPE", None)
    out: list[Logged[K]] = []
    for e in events:
        t, data = e.get("t"), e.get("data")
        if e.get("type") != type_ or not isinstance(data, Mapping) or isinstance(t, bool):
            continue
        if not isinstance(t, int | float):
            continue
        value = parse(str(type_), data)
        if isinstance(value, kind):
            out.append(Logged(float(t), value))
    out.sort(key=lambda logged: logged.t)
    return out
