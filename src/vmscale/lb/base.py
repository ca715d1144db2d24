"""The load-balancer contract.

The controller owns membership: it adds a server when the instance becomes ready, drains
it before scale-in, removes it once drained, and only then terminates the instance. It calls
``sync`` every reconcile tick with the full list of servers that should be in rotation, so a
balancer that restarted (and forgot its runtime state) is repaired within one interval.
All methods are bounded in time and raise ``LoadBalancerError`` on failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Server:
    name: str  # the instance name
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ServerStats:
    name: str
    state: str  # "ready", "drain", "maint", "down" ... as the balancer reports it
    sessions_current: int = 0
    queue_current: int = 0
    rate_rps: float = 0.0  # requests per second over the balancer's last second
    response_time_s: float | None = None  # the balancer's average response time for the server
    # The p95 of the requests the server answered recently (HAProxy: from its request log over
    # ``latency_window_s``); None when it answered none in that window or the balancer cannot tell.
    latency_p95_s: float | None = None


@runtime_checkable
class LoadBalancer(Protocol):
    kind: str

    def start(self) -> None:
        """Start (or adopt) the balancer process. Idempotent."""
        ...

    def stop(self) -> None:
        """Stop the balancer process and everything vmscale runs for it."""
        ...

    def close(self) -> None:
        """Stop only vmscale's side (receiver threads, sockets) and leave the balancer serving, for a
        controller that exits with ``--keep-instances``. Idempotent."""
        ...

    def alive(self) -> bool: ...

    def frontend_url(self) -> str | None:
        """The single address clients use, or None when clients balance themselves."""
        ...

    def sync(self, servers: Mapping[str, Server], draining: frozenset[str] = frozenset()) -> None:
        """Make the balancer's server list match: add missing (enabled), put ``draining`` in drain,
        delete servers that are in neither. Re-pushes everything after a balancer restart."""
        ...

    def add(self, server: Server) -> None: ...

    def drain(self, name: str) -> None: ...

    def remove(self, name: str) -> None: ...

    def backend_stats(self) -> ServerStats | None:
        """The group as a whole (its p95 over every request, whichever server answered), or None
        when the balancer has no such figure."""
        ...

    def stats(self) -> dict[str, ServerStats]:
        """Per-server figures; missing servers are absent."""
        ...
