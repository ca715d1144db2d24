"""A controller over in-memory parts, driven tick by tick: the fake provider, a fake health checker,
a fake clock, optionally the fake balancer, and a real SQLite store in a temp folder.

No threads, no sleeps: ``InlineExecutor`` finishes a provider call when it is submitted, so its result
is collected on the next tick, as with a real pool; ``HoldingExecutor`` holds back the calls of the
kinds a test names, the way a slow resume or a stuck terminate is still running on later ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from vmscale.clock import FakeClock
from vmscale.config import parse_config
from vmscale.controller import Controller, InlineExecutor
from vmscale.controller.fence import Fence
from vmscale.controller.fleet import Instance
from vmscale.controller.operations import OpCall
from vmscale.events import EventBus
from vmscale.health import FakeHealthChecker
from vmscale.lb.base import LoadBalancer
from vmscale.providers.fake import FakeProvider
from vmscale.store import Store
from vmscale.store.sqlite import SqliteStore

T = TypeVar("T")


class HoldingExecutor(InlineExecutor):
    """Runs provider calls at once, except those whose kind is in ``held``: they wait for
    ``release()``, the way a slow call (a managed-save restore, a VM boot, a stuck terminate) is
    still running on later ticks."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.waiting: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if not (isinstance(fn, OpCall) and fn.kind in self.held):
            return super().submit(fn, *args, **kwargs)
        fut: Future[T] = Future()
        self.waiting.append((fut, fn, args))
        return fut

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for fut, fn, args in waiting:
            try:
                fut.set_result(fn(*args))
            except Exception as exc:
                fut.set_exception(exc)


class Rig:
    def __init__(
        self,
        tmp: Path,
        *,
        lb: LoadBalancer | None = None,
        integrations: Any = None,
        make_provider: Callable[[FakeClock], Any] | None = None,
        **overrides: Any,
    ) -> None:
        """``make_provider`` makes the provider from the rig's clock (default: ``FakeProvider``)."""
        data: dict[str, Any] = {
            "group": {"name": "web", "min": 1, "max": 3, "interval_s": 1},
            "policies": [{"kind": "threshold", "upper": 75, "lower": 20, "samples_up": 3, "samples_down": 3}],
            "health": {"unhealthy_threshold": 3, "boot_timeout_s": 30},
            "drain": {"timeout_s": 10, "grace_s": 0},
        }
        data.update(overrides)
        self.cfg = parse_config(data)
        self.clock = FakeClock()
        self.provider: Any = make_provider(self.clock) if make_provider else FakeProvider(self.clock)
        if isinstance(self.provider, FakeProvider):
            self.provider.default_cpu = 50.0  # between the threshold's bounds: the policy holds the count
        self.health = FakeHealthChecker()
        self.db = tmp / "state.db"
        self.store = SqliteStore(self.db)
        self.executor = HoldingExecutor()
        self.lb = lb
        self.integrations = integrations
        self.events = EventBus(clock=self.clock.now)  # one bus for every controller the rig makes
        self.ctl = self.new_controller()

    def new_controller(self, *, store: Store | None = None, fence: Fence | None = None) -> Controller:
        """A controller over the rig's parts; a leader's writes through ``store`` (a fenced view),
        checked against ``fence``."""
        return Controller(
            self.cfg,
            self.provider,
            store or self.store,
            lb=self.lb,
            integrations=self.integrations,
            health=self.health,
            clock=self.clock,
            executor=self.executor,
            cluster=self.cfg.cluster,
            events=self.events,
            fence=fence,
        )

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.ctl.tick()
            self.clock.advance(1)

    def states(self) -> dict[str, str]:
        return {i.name: i.state.value for i in self.ctl.fleet}

    @property
    def desired(self) -> int:
        return self.ctl.autoscaler.state.desired

    def set_cpu(self, value: float) -> None:
        for name in self.provider.instances:
            self.provider.cpu[name] = value

    def instance(self, name: str) -> Instance:
        inst = self.ctl.fleet.get(name)
        assert inst is not None, f"{name} is not in the table: {self.states()}"
        return inst

    def errors(self, where: str | None = None) -> list[str]:
        """Messages of the error events reported so far (of one origin, e.g. "provider.launch")."""
        return [
            e.data["message"]
            for e in self.ctl.events.recent(["error"], limit=10_000)
            if where is None or e.data["where"] == where
        ]
