"""The composition root: from a validated config to a running group (provider, balancer, store,
controller, control API), and back down cleanly.

This is the one place that knows every concrete implementation; everything else receives
interfaces. ``vmscale up`` and ``vmscale demo`` both run through ``Service``.

Start-up is a transaction. ``Service.start`` first checks what it can without starting anything
(``vmscale.preflight``: the provider's library and daemon, free ports, tokens for an open bind),
then starts the pieces one by one, registering how to undo each *before* starting it; if any step
fails, what this start-up started is stopped in reverse order and the error is raised. Nothing it
adopted is touched: instances and an HAProxy left running by an earlier ``vmscale up`` keep serving.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from pathlib import Path

from vmscale.api.app import ServerHandle, create_app, serve_in_thread
from vmscale.api.auth import TokenStore, check_bind_allowed, split_bind
from vmscale.config.schema import VmscaleConfig
from vmscale.controller import Controller
from vmscale.errors import AuthError, ProviderError, ProviderUnavailableError, StartupError
from vmscale.events import DECISIONS_LOG, EventBus, JsonlWriter
from vmscale.health import build_health_checker
from vmscale.integrations import Integrations
from vmscale.lb.base import LoadBalancer
from vmscale.lb.none import NullBalancer
from vmscale.preflight import check_free, missing_library, reserve
from vmscale.providers.base import Provider
from vmscale.store import open_state_store

log = logging.getLogger("vmscale.service")


def state_dir_of(cfg: VmscaleConfig) -> Path:
    return Path(cfg.state.dir).expanduser().resolve()


def build_provider(cfg: VmscaleConfig, state_dir: Path) -> Provider:
    """The configured provider; ``StartupError`` with the install command if its library is missing."""
    kind = cfg.provider.kind
    try:
        if kind == "process":
            from vmscale.providers.process import ProcessProvider

            return ProcessProvider(cfg.provider.process, state_dir, fib_max_n=cfg.workload.fib.max_n)
        if kind == "libvirt" and cfg.cluster.hosts:
            from vmscale.hosts.multihost import build_multihost

            return build_multihost(cfg)
        if kind == "libvirt":
            from vmscale.providers.libvirt.provider import LibvirtProvider

            return LibvirtProvider(cfg.provider.libvirt, state_dir, max_vcpus=cfg.template.max_vcpus)
    except ImportError as exc:
        raise (missing_library(kind, exc) or exc) from None
    from vmscale.providers.fake import FakeProvider

    return FakeProvider()


def build_lb(cfg: VmscaleConfig, state_dir: Path) -> LoadBalancer:
    if cfg.lb.kind == "haproxy":
        from vmscale.lb.haproxy import HaproxyLoadBalancer

        return HaproxyLoadBalancer(cfg.lb.haproxy, cfg.group.name, state_dir / "haproxy", cfg.health)
    return NullBalancer()


def decisions_log_for(log_path: Path) -> Path:
    """The rarely rotated copy of everything but ticks, next to the full event log: when ticks
    rotate the full log, the decisions and state changes they pushed out are still here."""
    return log_path.with_name(DECISIONS_LOG)


class Service:
    """One group, running: ``start()`` recovers and starts the loop and the API; ``stop()`` ends them."""

    def __init__(
        self,
        cfg: VmscaleConfig,
        *,
        provider: Provider | None = None,
        lb: LoadBalancer | None = None,
        log_path: Path | None = None,
        serve_api: bool = True,
        tokens: TokenStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.state_dir = state_dir_of(cfg)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create the state folder {self.state_dir} (state.dir): {exc.strerror or exc}"
            ) from None
        with contextlib.ExitStack() as undo:  # a failure here closes what was opened so far
            self.store = open_state_store(cfg.state, self.state_dir)
            undo.callback(self.store.close)
            self.provider = provider or build_provider(cfg, self.state_dir)
            undo.callback(self.provider.close)
            self.lb = lb or build_lb(cfg, self.state_dir)
            self.events = EventBus()
            log_path = log_path or self.state_dir / "autoscaler.jsonl"
            logs = cfg.event_log
            self.writer = JsonlWriter(log_path, max_bytes=logs.max_bytes, backups=logs.backups)
            undo.callback(self.writer.close)
            self.decisions_writer = JsonlWriter(
                decisions_log_for(log_path),
                exclude={"tick"},
                max_bytes=logs.decisions_max_bytes,
                backups=logs.decisions_backups,
            )
            undo.callback(self.decisions_writer.close)
            self.events.add_listener(self.writer)
            self.events.add_listener(self.decisions_writer)
            # Webhooks, the original client and file_sd hear decisions and rotation changes on the bus;
            # hooks and external metrics are called by the controller itself.
            self.integrations = Integrations(cfg, publish=self.events.publish)
            undo.callback(self.integrations.close, group_removed=False)
            self.events.add_listener(self.integrations.on_event)
            self.controller = Controller(
                cfg,
                self.provider,
                self.store,
                lb=self.lb,
                events=self.events,
                health=build_health_checker(cfg.health),
                integrations=self.integrations,
            )
            self.tokens = tokens if tokens is not None else TokenStore.load(cfg.api.token_file)
            undo.pop_all()
        self.serve_api = serve_api
        self.api: ServerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False

    @property
    def api_url(self) -> str | None:
        if self.api is None:
            return None
        host, _ = split_bind(self.cfg.api.bind)
        return f"http://{host}:{self.api.port}"

    def _preflight(self, undo: contextlib.ExitStack) -> socket.socket | None:
        """Everything that can be known to fail before anything starts; returns the API's socket."""
        try:
            self.provider.list(self.cfg.group.name)
        except ProviderUnavailableError as exc:
            raise StartupError(str(exc)) from None
        except ProviderError:
            pass  # anything else: recovery reports it and the first ticks retry with back-off
        if self.cfg.lb.kind == "haproxy" and not self.lb.alive():
            check_free(self.cfg.lb.haproxy.bind, "lb.haproxy.bind")
            check_free(self.cfg.lb.haproxy.stats_bind, "lb.haproxy.stats_bind")
        if not self.serve_api:
            return None
        try:
            check_bind_allowed(self.cfg.api.bind, self.tokens)
        except AuthError as exc:
            raise StartupError(f"api.bind: {exc}") from None
        sock = reserve(self.cfg.api.bind, "api.bind")
        undo.callback(sock.close)  # closing is harmless once the server owns (and has closed) it
        return sock

    def start(self) -> None:
        """Start the group. On any failure, stop what this call started (in reverse order), release
        the provider, store and logs, and re-raise: nothing is left running."""
        with contextlib.ExitStack() as undo:
            undo.callback(self._release)
            sock = self._preflight(undo)
            if not self.lb.alive():  # adopted balancers are not ours to stop on failure
                undo.callback(self.lb.stop)  # registered first: a half-started HAProxy is stopped too
            self.lb.start()
            self.controller.recover()
            undo.callback(self.controller.shutdown, terminate=False)  # saves state, closes probes
            if sock is not None:
                app = create_app(
                    self.controller,
                    metrics=self.controller.metrics,
                    api_config=self.cfg.api,
                    tokens=self.tokens,
                )
                host, port = split_bind(self.cfg.api.bind)
                self.api = serve_in_thread(app, host, port, sock=sock)
                undo.callback(self.api.stop)
            self._thread = threading.Thread(
                target=self.controller.run, args=(self._stop,), name="vmscale-loop"
            )
            undo.callback(self._join_loop)
            self._thread.start()
            undo.pop_all()

    def _join_loop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stopped (or the timeout); True if the loop has ended."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, *, terminate: bool = True) -> None:
        if self._released:
            return  # a failed start() already stopped and released everything
        self._join_loop()
        self.controller.shutdown(terminate=terminate)
        self.integrations.close(group_removed=terminate)
        if self.api is not None:
            self.api.stop()
        if terminate:
            self.lb.stop()
        else:
            self.lb.close()  # kept instances keep their balancer; only vmscale's receiver stops
        self._release()

    def _release(self) -> None:
        """Close the provider's connections, the logs and the store (instances keep running)."""
        if self._released:
            return
        self._released = True
        self.provider.close()
        self.writer.close()
        self.decisions_writer.close()
        self.store.close()
