"""An in-memory ControlPlane for API, CLI and dashboard tests.

It keeps a group and its instances in dicts and publishes the same events, with the same data
shapes, as the real controller (see vmscale/events.py), so anything that works against it works
against ``vmscale up``. Helpers (``add_instance``, ``scale_up``, ``tick``) let a test drive the
story a user would watch: load rises, a decision is made, an instance boots and becomes ready.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from vmscale.clock import Clock, FakeClock
from vmscale.control import ControllerEntry, GroupStatus, HostInfo, InstanceInfo, Leadership
from vmscale.errors import NotLeaderError
from vmscale.event_kinds import (
    NO_STATE,
    DecisionApplied,
    Endpoint,
    EndpointsChanged,
    InstanceBrief,
    InstanceTransition,
    TickSummary,
)
from vmscale.events import EventBus

_LIVE = ("pending", "booting", "ready")


class FakeControlPlane:
    def __init__(
        self,
        *,
        name: str = "web",
        min_: int = 1,
        max_: int = 4,
        clock: Clock | None = None,
        base_port: int = 18100,
        events: EventBus | None = None,
    ) -> None:
        """``events``: a bus shared with other groups (this one publishes through its view of it)."""
        self.clock = clock or FakeClock()
        self.events = events.for_group(name) if events is not None else EventBus(clock=self.clock.now)
        self.name = name
        self.min = min_
        self.max = max_
        self.desired = min_
        self.paused = False
        self.base_port = base_port
        self._instances: dict[str, InstanceInfo] = {}
        self._history: list[dict[str, Any]] = []
        self._decisions: list[dict[str, Any]] = []
        self._next = 1
        self._lock = threading.RLock()
        self.writes: list[tuple[str, Any, str]] = []  # (what, value, actor): what the API asked for
        self._hosts: dict[str, HostInfo] = {}  # none: a group without [[cluster.hosts]]
        # Who leads: this fake by default; ``stand_by(leader_address)`` makes it a standby that
        # refuses writes, the way a real standby does (``vmscale.leadership``).
        self.who = Leadership(scope=name, id="fake-a", role="leader", leader_id="fake-a", epoch=1)

    # --- ControlPlane -------------------------------------------------------------------
    def group(self) -> GroupStatus:
        with self._lock:
            states: dict[str, int] = {}
            for i in self._instances.values():
                states[i.state] = states.get(i.state, 0) + 1
            live = sum(n for s, n in states.items() if s in _LIVE)
            return GroupStatus(
                name=self.name,
                desired=self.desired,
                actual=live,
                ready=states.get("ready", 0),
                min=self.min,
                max=self.max,
                paused=self.paused,
                provider="fake",
                lb="none",
                frontend_url=None,
                policies=["cpu-target"],
                states=states,
                last_decision=self._decisions[-1] if self._decisions else None,
                leadership=self.who.brief(),
            )

    def instances(self) -> list[InstanceInfo]:
        with self._lock:
            return list(self._instances.values())

    def endpoints(self) -> list[dict[str, str]]:
        with self._lock:
            return [
                {"name": i.name, "url": i.endpoint} for i in self._instances.values() if i.state == "ready"
            ]

    def leadership(self, *, full: bool = False) -> Leadership:
        if not full:
            return self.who
        leader = self.who.leader_id
        ids = sorted({self.who.id, leader} - {""}, key=lambda i: i != leader)
        entries = tuple(
            ControllerEntry(
                i, self.who.leader_address if i == leader else "", "leader" if i == leader else "standby",
                i == leader, 0.5, i == self.who.id,
            )
            for i in ids
        )  # fmt: skip
        return replace(self.who, controllers=entries)

    def stand_by(self, leader_address: str = "http://127.0.0.1:8901") -> None:
        self.who = Leadership(
            scope=self.name,
            id="fake-b",
            role="standby",
            leader_id="fake-a",
            leader_address=leader_address,
            epoch=1,
        )

    def _refuse_unless_leading(self) -> None:
        if self.who.role != "leader":
            raise NotLeaderError(
                f"controller {self.who.id} is a standby; the leader is {self.who.leader_id} at "
                f"{self.who.leader_address}",
                leader_id=self.who.leader_id,
                leader_address=self.who.leader_address,
            )

    def set_desired(self, count: int, actor: str) -> GroupStatus:
        self._refuse_unless_leading()
        if not self.min <= count <= self.max:
            raise ValueError(f"desired {count} is outside [min, max] = [{self.min}, {self.max}]")
        with self._lock:
            before = self.desired
            self.desired = count
            self.writes.append(("desired", count, actor))
        direction = "up" if count > before else "down" if count < before else "none"
        self._decide(count, direction, f"manual override by {actor}", "manual", actor)
        return self.group()

    def set_paused(self, paused: bool, actor: str) -> GroupStatus:
        self._refuse_unless_leading()
        with self._lock:
            self.paused = paused
            self.writes.append(("paused", paused, actor))
        verb = "paused" if paused else "resumed"
        self._decide(self.desired, "none", f"automatic scaling {verb} by {actor}", "manual", actor, verb)
        return self.group()

    def history(self, since: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [h for h in self._history if since is None or h["t"] >= since]

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            return self._decisions[-limit:]

    def hosts(self) -> list[HostInfo]:
        with self._lock:
            return list(self._hosts.values())

    def host_action(self, name: str, action: str, actor: str) -> HostInfo:
        with self._lock:
            if not self._hosts:
                raise ValueError("the fake provider runs this group without [[cluster.hosts]]")
            if name not in self._hosts:
                raise LookupError(f"unknown host {name!r}; the hosts are: {', '.join(self._hosts)}")
            state = {"cordon": "cordoned", "uncordon": "up", "drain": "draining"}[action]
            self._hosts[name] = replace(self._hosts[name], state=state)
            self.writes.append((action, name, actor))
            return self._hosts[name]

    # --- helpers for tests ----------------------------------------------------------------
    def add_host(self, name: str, instances: list[str] | None = None) -> HostInfo:
        host = HostInfo(
            name=name,
            state="up",
            uri=f"qemu+tls://{name}.example/system",
            cpus=8,
            vcpus_running=len(instances or []),
            vcpu_limit=32.0,
            memory_total_mb=16384.0,
            memory_free_mb=12000.0,
            domains=len(instances or []),
            instances=list(instances or []),
        )
        with self._lock:
            self._hosts[name] = host
        return host

    def add_instance(self, state: str = "ready", cpu: float | None = 20.0) -> InstanceInfo:
        with self._lock:
            name = f"{self.name}-{self._next}"
            inst = InstanceInfo(
                name=name,
                state=state,
                endpoint=f"http://127.0.0.1:{self.base_port + self._next}",
                vcpus=1,
                cpu=cpu,
                launched_at=self.clock.now(),
                ready_at=self.clock.now() if state == "ready" else None,
                group=self.name,
            )
            self._next += 1
            self._instances[name] = inst
        self.events.publish(InstanceTransition(name, NO_STATE, state, "launched", inst.endpoint))
        if state == "ready":
            self._publish_endpoints()
        return inst

    def _publish_endpoints(self) -> None:
        self.events.publish(EndpointsChanged(tuple(Endpoint(e["name"], e["url"]) for e in self.endpoints())))

    def transition(self, name: str, to: str, reason: str = "") -> None:
        with self._lock:
            old = self._instances[name]
            self._instances[name] = replace(
                old, state=to, ready_at=self.clock.now() if to == "ready" else None
            )
            if to == "gone":
                del self._instances[name]
        self.events.publish(InstanceTransition(name, old.state, to, reason, old.endpoint))
        if "ready" in (old.state, to):
            self._publish_endpoints()

    def set_cpu(self, cpu: float, spread: float = 0.0) -> None:
        """Ready instances get ``cpu``, fanned out by ``spread`` percent points so lines differ."""
        with self._lock:
            ready = [n for n, i in self._instances.items() if i.state == "ready"]
            mid = (len(ready) - 1) / 2
            for n, i in self._instances.items():
                value = cpu + spread * (ready.index(n) - mid) if n in ready else None
                self._instances[n] = replace(i, cpu=value)

    def tick(self, latency_p95_s: float | None = None, rps: float | None = None) -> dict[str, Any]:
        """Record and publish one observation, like the controller's reconcile tick."""
        g = self.group()
        with self._lock:
            tick = TickSummary(
                desired=g.desired,
                actual=g.actual,
                ready=g.ready,
                warm=g.warm,
                instances={i.name: InstanceBrief(i.state, i.cpu) for i in self._instances.values()},
                latency_p95_s=latency_p95_s,
                rps=rps,
            )
            data = tick.to_dict()
            self._history.append({"t": self.clock.now(), **data})
        self.events.publish(tick)
        return data

    def scale_up(self, reason: str = "cpu 85.0% > target 60.0%") -> InstanceInfo:
        """A policy decision to add one instance, and that instance booting to ready."""
        with self._lock:
            self.desired = min(self.max, self.desired + 1)
        self._decide(self.desired, "up", reason, "cpu-target", "policy")
        inst = self.add_instance(state="booting", cpu=None)
        self.transition(inst.name, "ready", "health check passed")
        return self._instances[inst.name]

    def _decide(
        self, desired: int, direction: str, reason: str, policy: str, actor: str, action: str = "scale"
    ) -> None:
        decision = DecisionApplied(
            desired, self.group().actual, direction, reason, policy, actor, action=action
        )
        with self._lock:
            self._decisions.append({**decision.to_dict(), "t": self.clock.now()})
        self.events.publish(decision)


READ_TOKEN = "read-token-0123456789"
WRITE_TOKEN = "write-token-0123456789"


def make_api(
    control: FakeControlPlane | None = None,
    *,
    with_tokens: bool = True,
    rate_limit_per_s: float = 10_000.0,
    max_body_bytes: int = 16_384,
    **kwargs: Any,
) -> tuple[Any, FakeControlPlane]:
    """A control API app over a fake (one ready instance), with a read and a write token."""
    from vmscale.api.app import create_app
    from vmscale.api.auth import Scope, TokenStore
    from vmscale.config.schema import ApiConfig
    from vmscale.metrics import ControllerMetrics

    if control is None:
        control = FakeControlPlane()
        control.add_instance()
    tokens = TokenStore(
        [(Scope.READ, READ_TOKEN, None), (Scope.WRITE, WRITE_TOKEN, None)] if with_tokens else []
    )
    cfg = ApiConfig(bind="127.0.0.1:0", rate_limit_per_s=rate_limit_per_s, max_body_bytes=max_body_bytes)
    app = create_app(
        control,
        metrics=kwargs.pop("metrics", ControllerMetrics("web")),
        api_config=cfg,
        tokens=tokens,
        **kwargs,
    )
    return app, control


def make_groups_api(*names: str, **kwargs: Any) -> tuple[Any, dict[str, FakeControlPlane], EventBus]:
    """A control API over several fake groups sharing one bus and one metrics registry, each with
    one ready instance (ports apart, so endpoints differ)."""
    from vmscale.api.app import create_app
    from vmscale.api.auth import Scope, TokenStore
    from vmscale.config.schema import ApiConfig
    from vmscale.control import ControlGroups
    from vmscale.metrics import ControllerMetrics, MetricFamilies

    clock = FakeClock()
    bus = EventBus(clock=clock.now)
    families = MetricFamilies()
    planes = {}
    for k, name in enumerate(names):
        planes[name] = FakeControlPlane(name=name, clock=clock, base_port=18100 + 100 * k, events=bus)
        planes[name].add_instance()
        ControllerMetrics(name, families)
    tokens = TokenStore([(Scope.READ, READ_TOKEN, None), (Scope.WRITE, WRITE_TOKEN, None)])
    cfg = ApiConfig(bind="127.0.0.1:0", rate_limit_per_s=10_000.0)
    app = create_app(
        ControlGroups(list(planes.values()), bus), metrics=families, api_config=cfg, tokens=tokens, **kwargs
    )
    return app, planes, bus
