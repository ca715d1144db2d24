"""The composition root: from a validated config to a running group (provider, balancer, store,
controller, control API), and back down cleanly.

This is the one place that knows every concrete implementation; everything else receives
interfaces. ``vmscale up`` and ``vmscale demo`` both run through ``Service``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from vmscale.api.app import ServerHandle, create_app, serve_in_thread
from vmscale.api.auth import TokenStore, split_bind
from vmscale.config.schema import VmscaleConfig
from vmscale.controller import Controller
from vmscale.events import EventBus, JsonlWriter
from vmscale.lb.base import LoadBalancer
from vmscale.providers.base import Provider
from vmscale.store import Store

log = logging.getLogger("vmscale.service")


def state_dir_of(cfg: VmscaleConfig) -> Path:
    return Path(cfg.state.dir).expanduser().resolve()


def build_provider(cfg: VmscaleConfig, state_dir: Path) -> Provider:
    kind = cfg.provider.kind
    if kind == "process":
        from vmscale.providers.process import ProcessProvider

        return ProcessProvider(cfg.provider.process, state_dir, fib_max_n=cfg.workload.fib.max_n)
    if kind == "libvirt":
        from vmscale.providers.libvirt.provider import LibvirtProvider

        return LibvirtProvider(cfg.provider.libvirt, state_dir)
    from vmscale.providers.fake import FakeProvider

    return FakeProvider()


def build_lb(cfg: VmscaleConfig, state_dir: Path) -> LoadBalancer | None:
    if cfg.lb.kind == "haproxy":
        from vmscale.lb.haproxy import HaproxyLoadBalancer

        return HaproxyLoadBalancer(cfg.lb.haproxy, cfg.group.name, state_dir / "haproxy")
    return None


class Service:
    """One group, running: ``start()`` recovers and starts the loop and the API; ``stop()`` ends them."""

    def __init__(
        self,
        cfg: VmscaleConfig,
        *,
        provider: Provider | None = None,
        log_path: Path | None = None,
        serve_api: bool = True,
        tokens: TokenStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.state_dir = state_dir_of(cfg)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(Path(cfg.state.db) if cfg.state.db else self.state_dir / "state.db")
        self.provider = provider or build_provider(cfg, self.state_dir)
        self.lb = build_lb(cfg, self.state_dir)
        self.events = EventBus()
        self.writer = JsonlWriter(log_path or self.state_dir / "autoscaler.jsonl")
        self.events.add_listener(self.writer)
        self.controller = Controller(cfg, self.provider, self.store, lb=self.lb, events=self.events)
        self.tokens = tokens if tokens is not None else TokenStore.load(cfg.api.token_file)
        self.serve_api = serve_api
        self.api: ServerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def api_url(self) -> str | None:
        if self.api is None:
            return None
        host, _ = split_bind(self.cfg.api.bind)
        return f"http://{host}:{self.api.port}"

    def start(self) -> None:
        if self.lb is not None:
            self.lb.start()
        self.controller.recover()
        if self.serve_api:
            app = create_app(
                self.controller, metrics=self.controller.metrics, api_config=self.cfg.api, tokens=self.tokens
            )
            host, port = split_bind(self.cfg.api.bind)
            self.api = serve_in_thread(app, host, port)
        self._thread = threading.Thread(target=self.controller.run, args=(self._stop,), name="vmscale-loop")
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stopped (or the timeout); True if the loop has ended."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, *, terminate: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.controller.shutdown(terminate=terminate)
        if self.api is not None:
            self.api.stop()
        if self.lb is not None and terminate:
            self.lb.stop()
        self.provider.close()
        self.writer.close()
        self.store.close()
