"""What the control API and the CLI may ask of a running controller (and nothing more).

The API layer depends on this Protocol, not on the controller module, so it can be tested
against a fake and the controller can change behind it.

``GroupControl`` is one group's status and controls, as a leading controller (``Controller``) or a
standby reading the store (``vmscale.standby``) answers them; ``ControlPlane`` adds who leads, which
only the process that runs the election knows (``vmscale.leadership``). One ``ControlPlane`` per
group; ``ControlGroups`` is every group of one ``vmscale up`` with the event bus they share (and
one election: every group's plane says the same about who leads).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from vmscale.events import EventBus


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    name: str
    state: str
    endpoint: str
    vcpus: int
    cpu: float | None = None  # latest CPU %, of its own vCPUs
    launched_at: float | None = None
    ready_at: float | None = None
    details: dict[str, str] = field(default_factory=dict)
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GroupStatus:
    name: str
    desired: int
    actual: int  # live instances (pending + booting + ready)
    ready: int
    min: int
    max: int
    paused: bool
    provider: str
    lb: str
    frontend_url: str | None
    policies: list[str]
    states: dict[str, int]
    last_decision: dict[str, Any] | None = None
    warm: int = 0
    # The golden snapshot clones are restored from (``controller/golden.py``); None: no clones.
    golden: dict[str, Any] | None = None
    # Who answers and who leads (``Leadership.brief``); None where there is no election (fakes).
    leadership: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HostInfo:
    """One libvirt host as ``vmscale hosts`` shows it: its state, what libvirt reports of it, the
    group's instances on it (by the controller's record), the operators' wish, and what is happening
    to it now (a drain's progress, a migration, "left empty by consolidation")."""

    name: str
    state: str  # up, not answering, unreachable, cordoned, draining, unknown (never answered)
    uri: str
    labels: dict[str, str] = field(default_factory=dict)
    cpus: int | None = None
    vcpus_running: int | None = None  # vCPUs of every running domain, any group
    vcpu_limit: float | None = None  # cpus x the host's overcommit limit
    memory_total_mb: float | None = None
    memory_free_mb: float | None = None
    domains: int | None = None  # of any group
    instances: list[str] = field(default_factory=list)  # this group's
    wish: dict[str, Any] | None = None  # cordoned, draining, actor, reason, t
    activity: str = ""
    error: str = ""  # the last connection error while it does not answer
    facts_age_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ControllerEntry:
    """One `vmscale up` process of the scope, from the registry every controller writes to."""

    id: str  # HOST/PID/START
    address: str  # its control API URL ("" if it serves none)
    role: str  # "leader" or "standby", as it last reported itself
    leads: bool  # it holds the scope's unexpired lease (the store's view)
    last_seen_s: float  # since its last heartbeat
    this: bool  # the controller that answered


@dataclass(frozen=True, slots=True)
class Leadership:
    """Who leads the scope, as the answering controller knows it."""

    scope: str
    id: str  # the answering controller
    role: str  # its own role: "leader" or "standby"
    leader_id: str = ""  # "" when nobody leads right now
    leader_address: str = ""
    epoch: int | None = None  # the leader's term
    lease_age_s: float | None = None  # since the lease was last renewed
    first_tick_at: float | None = None  # leading: when this term's first tick passed (epoch s)
    controllers: tuple[ControllerEntry, ...] = ()  # filled by ``ControlPlane.leadership(full=True)``

    def brief(self) -> dict[str, Any]:
        """Everything but the registry: what ``GroupStatus.leadership`` carries."""
        out = asdict(self)
        del out["controllers"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GroupControl(Protocol):
    events: EventBus

    def group(self) -> GroupStatus: ...

    def instances(self) -> list[InstanceInfo]: ...

    def endpoints(self) -> list[dict[str, str]]:
        """Ready endpoints: [{"name": ..., "url": ...}]."""
        ...

    def set_desired(self, count: int, actor: str) -> GroupStatus:
        """Manual override. Raises ValueError (message for the user) outside [min, max], and
        ``NotLeaderError`` (naming the leader) on a standby: writes belong to the leader."""
        ...

    def set_paused(self, paused: bool, actor: str) -> GroupStatus:
        """Pause or resume automatic decisions (health replacement goes on); ``NotLeaderError`` on a
        standby."""
        ...

    def history(self, since: float | None = None) -> list[dict[str, Any]]:
        """Tick records (see ``events``) since ``since``, oldest first, for charts."""
        ...

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        """Most recent decision records, newest last."""
        ...

    def hosts(self) -> list[HostInfo]:
        """The group's libvirt hosts; empty for a provider without hosts (process, one libvirt)."""
        ...

    def host_action(self, name: str, action: str, actor: str) -> HostInfo:
        """``cordon``, ``uncordon`` or ``drain`` a host. LookupError for an unknown host, ValueError
        (a message for the user) when the provider has no hosts."""
        ...


class ControlPlane(GroupControl, Protocol):
    def leadership(self, *, full: bool = False) -> Leadership:
        """Who leads; with ``full``, every controller of the scope as well (one store read)."""
        ...


class UnknownGroupError(KeyError):
    """A group name this controller does not run; the message names the ones it does."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown group"


class ControlGroups:
    """Every group one controller process runs, by name, in config order, and their shared bus.

    The API serves each group from its own ``ControlPlane`` and the event stream from ``events``.
    A one-group controller is the same with one entry (``ControlGroups.of(plane)``)."""

    def __init__(self, planes: Sequence[ControlPlane], events: EventBus) -> None:
        self.events = events
        self._planes = {plane.group().name: plane for plane in planes}
        if len(self._planes) != len(planes):
            raise ValueError("two control planes answer for one group name")

    @classmethod
    def of(cls, control: ControlPlane | ControlGroups) -> ControlGroups:
        """``control`` as a set of groups (one group's plane becomes a set of one)."""
        return control if isinstance(control, ControlGroups) else cls([control], control.events)

    @property
    def names(self) -> list[str]:
        return list(self._planes)

    def get(self, name: str) -> ControlPlane:
        """The group called ``name``; ``UnknownGroupError`` naming the groups there are."""
        try:
            return self._planes[name]
        except KeyError:
            raise UnknownGroupError(
                f"no group {name!r} here; this controller runs {', '.join(map(repr, self.names))}"
            ) from None

    def only(self) -> ControlPlane | None:
        """The one group when there is exactly one (what the one-group API paths answer for)."""
        return next(iter(self._planes.values())) if len(self._planes) == 1 else None

    def __iter__(self) -> Iterator[ControlPlane]:
        return iter(list(self._planes.values()))

    def leadership(self, *, full: bool = False) -> Leadership:
        """Who leads: one election covers every group of the process, so any group's plane knows."""
        return next(iter(self._planes.values())).leadership(full=full)
