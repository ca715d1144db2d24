"""Steps 7 and 8 of a tick: finish drains, keep the balancer in step, publish what happened.

A draining instance is terminated once nothing is in flight (by the balancer's count, else the
backend's own) or at the drain timeout. The balancer is told the full server set every tick
(level-triggered: a restarted HAProxy is repaired), and the tick's figures go to the event bus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmscale.controller import act, observe
from vmscale.controller.managed import Managed
from vmscale.errors import LoadBalancerError
from vmscale.lb.base import Server
from vmscale.model import InstanceState

if TYPE_CHECKING:
    from vmscale.controller.core import Controller

S = InstanceState


def progress_drains(ctl: Controller, now: float) -> None:
    """Terminate draining instances once nothing is in flight, or at the drain timeout."""
    stats = observe.lb_stats(ctl)
    for m in [m for m in ctl.table.values() if m.state is S.DRAINING and not m.busy]:
        if m.drain_started is None:
            # Adopted mid-drain after a restart: the wait (and its timeout) starts again now.
            # Falling back to ``now`` on every tick instead would keep it in the grace forever.
            m.drain_started = now
        started = m.drain_started
        if now - started < ctl.cfg.drain.grace_s:
            continue
        st = stats.get(m.name)
        inflight = st.sessions_current if st is not None else m.inflight
        if inflight == 0:
            act.terminate(ctl, m, now, "drained: no requests in flight")
        elif now - started >= ctl.cfg.drain.timeout_s:
            act.terminate(
                ctl, m, now, f"drain timeout after {ctl.cfg.drain.timeout_s:g}s ({inflight} in flight)"
            )


def sync_lb(ctl: Controller) -> None:
    """Tell the balancer the whole server set (ready and draining) every tick: level-triggered."""
    if ctl.lb is None:
        return
    servers = {}
    for m in ctl.table.values():
        if m.state in (S.READY, S.DRAINING) and (hp := m.host_port) is not None:
            servers[m.name] = Server(m.name, *hp)
    draining = frozenset(m.name for m in ctl.table.values() if m.state is S.DRAINING)
    try:
        ctl.lb.sync(servers, draining)
    except LoadBalancerError as exc:
        ctl._error("lb.sync", str(exc))


def remove_from_lb(ctl: Controller, m: Managed) -> None:
    if ctl.lb is None:
        return
    try:
        ctl.lb.remove(m.name)
    except LoadBalancerError as exc:
        ctl._error("lb.remove", str(exc), m.name)


def publish(ctl: Controller, now: float, full: bool) -> None:
    if full:
        publish_tick(ctl, now)
    publish_endpoints(ctl)


def publish_tick(ctl: Controller, now: float) -> None:
    counts = {s.value: 0 for s in S if s is not S.GONE}
    for m in ctl.table.values():
        counts[m.state.value] += 1
    for state, n in counts.items():
        ctl.metrics.instances.labels(ctl.group_name, state).set(n)
    actual = sum(1 for m in ctl.table.values() if m.in_group)
    ready = counts[S.READY.value]
    ctl.metrics.desired.labels(ctl.group_name).set(ctl.desired)
    ctl.metrics.actual.labels(ctl.group_name).set(actual)
    data = {
        "desired": ctl.desired,
        "actual": actual,
        "ready": ready,
        "warm": counts[S.WARM.value],
        "instances": {m.name: {"state": m.state.value, "cpu": m.latest_cpu()} for m in ctl.table.values()},
        "latency_p95_s": ctl._group_latency,
        "rps": ctl._group_rps,
    }
    ctl.events.publish("tick", data)
    ctl._history.append({"t": now, **data})
    cutoff = now - ctl.cfg.group.history_s
    while ctl._history and ctl._history[0]["t"] < cutoff:
        ctl._history.pop(0)


def publish_endpoints(ctl: Controller) -> None:
    eps = [
        {"name": m.name, "url": m.endpoint}
        for m in sorted(ctl.table.values(), key=lambda m: m.index)
        if m.state is S.READY
    ]
    if eps != ctl._endpoints:
        ctl._endpoints = eps
        ctl.events.publish("endpoints", {"endpoints": eps})
