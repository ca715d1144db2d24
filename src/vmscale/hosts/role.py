"""What the controller asks of a provider that spreads a group over several hosts.

``MultiHostProvider`` plays this role (as well as ``Lifecycle``, ``CpuSampler``, ``WarmPool`` and
``Migrator`` from ``providers.base``); the process provider and the single-host libvirt provider do
not, and the controller then runs no host step at all. It is written as Protocols over plain values
(``hosts.values``, ``plan``) so the controller holds it without importing libvirt, and a unit test
can play it with an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from vmscale.hosts.values import HostStatus
from vmscale.plan.fencing import Copy
from vmscale.plan.placement import HostView, Placement


class Inventory(Protocol):
    """The hosts, their facts and reachability, and the controller's wishes for each."""

    def names(self) -> list[str]: ...

    def refresh(self) -> list[HostStatus]:
        """Read every host's facts now (each call bounded); the statuses after it."""
        ...

    def statuses(self) -> list[HostStatus]:
        """The statuses as of the last refresh (no I/O)."""
        ...

    def views(self, group: str) -> list[HostView]:
        """What placement, drain and consolidation plans see of each host."""
        ...

    def set_flags(self, name: str, *, cordoned: bool, draining: bool) -> None:
        """Raises ValueError naming the hosts when ``name`` is not one of them."""
        ...


@runtime_checkable
class HostsRole(Protocol):
    inventory: Inventory
    # Called (from a worker thread) with every placement decision a launch makes.
    on_placement: Callable[[Placement], None] | None

    def copies(self, name: str) -> tuple[Copy, ...]:
        """The copies of ``name`` on several hosts found by the last ``list`` (empty: one or none)."""
        ...

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0, host: str | None = None) -> None:
        """With ``host``, remove only the copy on that host (fencing a duplicate)."""
        ...


def hosts_role(provider: object) -> HostsRole | None:
    return provider if isinstance(provider, HostsRole) else None
