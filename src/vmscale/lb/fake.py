"""An in-memory load balancer for the controller's unit tests.

It keeps membership and drain state like HAProxy would, records every call in order, lets a
test set each server's current sessions (to drive the controller's drain wait), and can be
made to fail (``fail_next``) or to "restart" and forget its servers (``restart``), so tests
can check that ``sync`` repairs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from vmscale.errors import LoadBalancerError
from vmscale.lb.base import Server, ServerStats


@dataclass
class FakeMember:
    server: Server
    draining: bool = False
    sessions: int = 0
    queue: int = 0
    rate_rps: float = 0.0
    response_time_s: float | None = None
    latency_p95_s: float | None = None
    healthy: bool = True


@dataclass
class FakeLoadBalancer:
    kind: str = "fake"
    url: str | None = "http://127.0.0.1:8080"
    members: dict[str, FakeMember] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    running: bool = False
    fail_next: list[LoadBalancerError] = field(default_factory=list)
    backend: ServerStats | None = None  # what backend_stats() reports (set by a test)

    def _call(self, *call: str) -> None:
        self.calls.append(call)
        if self.fail_next:
            raise self.fail_next.pop(0)

    # ---- protocol ----
    def start(self) -> None:
        self._call("start")
        self.running = True

    def stop(self) -> None:
        self._call("stop")
        self.running = False

    def close(self) -> None:
        self._call("close")

    def alive(self) -> bool:
        return self.running

    def frontend_url(self) -> str | None:
        return self.url

    def sync(self, servers: Mapping[str, Server], draining: frozenset[str] = frozenset()) -> None:
        self._call("sync", *sorted(servers), *(f"drain:{n}" for n in sorted(draining)))
        for name in list(self.members):
            if name not in servers and name not in draining:
                del self.members[name]
        for name, server in servers.items():
            member = self.members.get(name)
            if member is None or member.server != server:
                member = self.members[name] = FakeMember(server)
            member.draining = name in draining
        for name in draining:
            if name in self.members:
                self.members[name].draining = True

    def add(self, server: Server) -> None:
        self._call("add", server.name)
        member = self.members.get(server.name)
        if member is None or member.server != server:
            self.members[server.name] = FakeMember(server)
        else:
            member.draining = False

    def drain(self, name: str) -> None:
        self._call("drain", name)
        if name not in self.members:
            raise LoadBalancerError(f"cannot drain {name!r}: No such server.")
        self.members[name].draining = True

    def remove(self, name: str) -> None:
        self._call("remove", name)
        self.members.pop(name, None)

    def backend_stats(self) -> ServerStats | None:
        self._call("backend_stats")
        return self.backend

    def stats(self) -> dict[str, ServerStats]:
        self._call("stats")
        return {
            name: ServerStats(
                name=name,
                state="drain" if m.draining else ("ready" if m.healthy else "down"),
                sessions_current=m.sessions,
                queue_current=m.queue,
                rate_rps=m.rate_rps,
                response_time_s=m.response_time_s,
                latency_p95_s=m.latency_p95_s,
            )
            for name, m in self.members.items()
        }

    # ---- test controls ----
    def set_sessions(self, name: str, sessions: int) -> None:
        self.members[name].sessions = sessions

    def set_figures(self, name: str, **figures: float | int | bool | None) -> None:
        """Set any of sessions/queue/rate_rps/response_time_s/latency_p95_s/healthy for a server."""
        self.members[name] = replace(self.members[name], **figures)  # type: ignore[arg-type]

    def restart(self) -> None:
        """Simulate a balancer restart: the runtime state (all servers) is forgotten."""
        self.members.clear()

    def in_rotation(self) -> set[str]:
        """Servers that receive new requests (present, healthy, not draining)."""
        return {n for n, m in self.members.items() if m.healthy and not m.draining}
