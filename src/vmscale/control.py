"""What the control API and the CLI may ask of a running controller (and nothing more).

The API layer depends on this Protocol, not on the controller module, so it can be tested
against a fake and the controller can change behind it.

``GroupControl`` is one group's status and controls, as a leading controller (``Controller``) or a
standby reading the store (``vmscale.standby``) answers them; ``ControlPlane`` adds who leads, which
only the process that runs the election knows (``vmscale.leadership``).
"""

from __future__ import annotations

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
    # Who answers and who leads (``Leadership.brief``); None where there is no election (fakes).
    leadership: dict[str, Any] | None = None

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


class ControlPlane(GroupControl, Protocol):
    def leadership(self, *, full: bool = False) -> Leadership:
        """Who leads; with ``full``, every controller of the scope as well (one store read)."""
        ...
