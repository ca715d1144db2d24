"""What the control API and the CLI may ask of a running controller (and nothing more).

The API layer depends on this Protocol, not on the controller module, so it can be tested
against a fake and the controller can change behind it.
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


class ControlPlane(Protocol):
    events: EventBus

    def group(self) -> GroupStatus: ...

    def instances(self) -> list[InstanceInfo]: ...

    def endpoints(self) -> list[dict[str, str]]:
        """Ready endpoints: [{"name": ..., "url": ...}]."""
        ...

    def set_desired(self, count: int, actor: str) -> GroupStatus:
        """Manual override. Raises ValueError (message for the user) outside [min, max]."""
        ...

    def set_paused(self, paused: bool, actor: str) -> GroupStatus:
        """Pause or resume automatic decisions (health replacement goes on)."""
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
