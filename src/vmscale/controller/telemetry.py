"""What the controller tells the outside world after each tick, and what API reads are served from.

At the end of every tick ``publish`` builds one immutable ``ControllerView`` (counts, instances,
ready endpoints, traffic) and swaps it in with a single assignment. API reads take that reference
and never the loop's time: a tick that waits on slow health probes or a slow store delays no
``GET /v1/instances``. The tick summary (events, history for charts, Prometheus gauges) and the
endpoint changes (for clients that balance themselves) are published from the same values. A
clone group's golden snapshot has its own small owner here (``golden.py``), read by the status.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from vmscale.control import InstanceInfo
from vmscale.controller.fleet import Counts, Fleet
from vmscale.controller.golden import GoldenTracker
from vmscale.controller.membership import Traffic
from vmscale.event_kinds import Endpoint, EndpointsChanged, InstanceBrief, TickSummary
from vmscale.events import EventBus
from vmscale.metrics import ControllerMetrics
from vmscale.model import InstanceState

S = InstanceState


@dataclass(frozen=True, slots=True)
class ControllerView:
    counts: Counts
    instances: tuple[InstanceInfo, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    traffic: Traffic = field(default_factory=Traffic)


class Telemetry:
    def __init__(
        self, group: str, events: EventBus, metrics: ControllerMetrics, *, history_s: float, interval_s: float
    ) -> None:
        self._group = group
        self._events = events
        self._metrics = metrics
        self._history_s = history_s
        # One tick record per full tick; the bound keeps memory flat even if the clock misbehaves.
        self._history: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max(16, math.ceil(history_s / interval_s) + 1)
        )
        self._history_lock = threading.Lock()
        self.view = ControllerView(Fleet().counts())
        self.golden = GoldenTracker(events.publish)  # a clone group's golden snapshot, for the status

    def publish(self, fleet: Fleet, desired: int, traffic: Traffic, now: float, *, full: bool) -> None:
        counts = fleet.counts()
        ordered = fleet.by_index()
        endpoints = tuple(Endpoint(i.name, i.facts.endpoint) for i in ordered if i.state is S.READY)
        instances = tuple(
            InstanceInfo(
                name=i.name,
                state=i.state.value,
                endpoint=i.facts.endpoint,
                vcpus=i.facts.vcpus,
                cpu=i.latest_cpu(),
                launched_at=i.launched_at,
                ready_at=i.ready_at,
                details=dict(i.facts.details),
                group=self._group,
            )
            for i in ordered
        )
        previous = self.view
        self.view = ControllerView(counts, instances, endpoints, traffic)
        if full:
            self._publish_tick(counts, instances, desired, traffic, now)
        if endpoints != previous.endpoints:
            self._events.publish(EndpointsChanged(endpoints))

    def _publish_tick(
        self, counts: Counts, instances: tuple[InstanceInfo, ...], desired: int, traffic: Traffic, now: float
    ) -> None:
        for state, n in counts.by_state.items():
            self._metrics.instances.labels(self._group, state).set(n)
        self._metrics.desired.labels(self._group).set(desired)
        self._metrics.actual.labels(self._group).set(counts.actual)
        tick = TickSummary(
            desired=desired,
            actual=counts.actual,
            ready=counts.ready,
            warm=counts.warm,
            instances={i.name: InstanceBrief(i.state, i.cpu) for i in instances},
            latency_p95_s=traffic.latency_p95_s,
            rps=traffic.rps,
            vcpus=counts.vcpus,
        )
        self._events.publish(tick)
        with self._history_lock:
            self._history.append({"t": now, **tick.to_dict()})
            while self._history and self._history[0]["t"] < now - self._history_s:
                self._history.popleft()

    def forget(self) -> None:
        """This controller stopped leading: its group gauges would go stale, so they leave /metrics
        (the leader publishes the live ones)."""
        self._metrics.forget_group_state()

    def history(self, since: float | None = None) -> list[dict[str, Any]]:
        with self._history_lock:
            return [h for h in self._history if since is None or h["t"] > since]
