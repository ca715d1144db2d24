"""No load balancer: clients balance themselves over the control API's event stream
(``endpoints`` events), as in the original system. Every membership call is a no-op.

The controller always has a balancer; this null object stands in when the config has none, so no
code path asks "is there a balancer?" (a drain then waits on the workload's own in-flight count,
because ``stats`` knows no sessions).
"""

from __future__ import annotations

from collections.abc import Mapping

from vmscale.lb.base import Server, ServerStats


class NullBalancer:
    kind = "none"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    def alive(self) -> bool:
        return True

    def frontend_url(self) -> str | None:
        return None

    def sync(self, servers: Mapping[str, Server], draining: frozenset[str] = frozenset()) -> None:
        pass

    def add(self, server: Server) -> None:
        pass

    def drain(self, name: str) -> None:
        pass

    def remove(self, name: str) -> None:
        pass

    def backend_stats(self) -> ServerStats | None:
        return None

    def stats(self) -> dict[str, ServerStats]:
        return {}
