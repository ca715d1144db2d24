"""The balancer as the reconcile steps use it: membership calls whose failures are reported, not
raised (a balancer that is down must not stop the loop; the next ``sync`` repairs it).

The controller always has a balancer: ``vmscale.lb.none.NullBalancer`` stands in when the config
has none, so no step asks whether there is one.

Every call that changes the balancer is fenced (``fence.py``): a local leadership check first, and
for ``sync``, which runs every tick with no record in front of it, a check with the store too, so a
controller that lost the lease never rewrites the new leader's server set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vmscale.controller.fence import Fence
from vmscale.controller.fleet import Instance
from vmscale.controller.reporting import ErrorReporter
from vmscale.errors import LoadBalancerError
from vmscale.lb.base import LoadBalancer, Server, ServerStats
from vmscale.model import InstanceState

S = InstanceState


@dataclass(frozen=True, slots=True)
class Traffic:
    """Group-level figures from the balancer, as of the last full tick."""

    latency_p95_s: float | None = None
    rps: float | None = None


def _server(inst: Instance) -> Server | None:
    """The balancer's view of an instance; weighed by the vCPUs it serves with (a resize in transit
    counts once the workload has taken it)."""
    hp = inst.facts.host_port
    return Server(inst.name, *hp, weight=inst.serving_vcpus) if hp is not None else None


class Membership:
    def __init__(self, lb: LoadBalancer, report: ErrorReporter, fence: Fence) -> None:
        self.lb = lb
        self._report = report
        self._fence = fence

    def add(self, inst: Instance) -> None:
        server = _server(inst)
        if server is None:
            return
        self._fence.check("lb.add")
        try:
            self.lb.add(server)
        except LoadBalancerError as exc:
            self._report.error("lb.add", str(exc), inst.name)

    def drain(self, inst: Instance) -> None:
        self._fence.check("lb.drain")
        try:
            self.lb.drain(inst.name)
        except LoadBalancerError as exc:
            self._report.error("lb.drain", str(exc), inst.name)

    def remove(self, inst: Instance) -> None:
        self._fence.check("lb.remove")
        try:
            self.lb.remove(inst.name)
        except LoadBalancerError as exc:
            self._report.error("lb.remove", str(exc), inst.name)

    def stats(self) -> dict[str, ServerStats]:
        """The balancer's per-server figures, fresh each call (a drain needs current sessions)."""
        try:
            return self.lb.stats()
        except LoadBalancerError as exc:
            self._report.error("lb.stats", str(exc))
            return {}

    def backend_stats(self) -> ServerStats | None:
        try:
            return self.lb.backend_stats()
        except LoadBalancerError as exc:
            self._report.error("lb.stats", str(exc))
            return None

    def sync(self, instances: Iterable[Instance]) -> None:
        """Tell the balancer the whole server set (ready, draining, and unknown ones as draining):
        level-triggered, so a restarted balancer is repaired within one tick.

        An instance whose host went silent is drained, not removed: it gets no new requests, but
        its guest usually still runs, and the requests it has in flight can finish (removing the
        server would cut them). It is removed once it fails (its host unreachable)."""
        servers: dict[str, Server] = {}
        draining: set[str] = set()
        for inst in instances:
            if inst.state in (S.READY, S.DRAINING, S.UNKNOWN) and (server := _server(inst)) is not None:
                servers[inst.name] = server
                if inst.state is not S.READY:
                    draining.add(inst.name)
        self._fence.confirm("lb.sync")
        try:
            self.lb.sync(servers, frozenset(draining))
        except LoadBalancerError as exc:
            self._report.error("lb.sync", str(exc))
