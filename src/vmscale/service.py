"""The composition root: from a validated config to running groups (providers, balancers, store,
controllers, control API), and back down cleanly.

This is the one place that knows every concrete implementation; everything else receives
interfaces. ``vmscale up`` and ``vmscale demo`` both run through ``Service``.

One process, any number of groups: the store, the event bus with its JSONL logs, the metric
families and the control API are one each, shared; each group has its own provider, balancer,
integrations, controller and loop thread (``vmscale.group_runtime``). A one-group file runs
exactly as it did before groups existed (same paths, same state folder layout).

Start-up is a transaction. ``Service.start`` first checks what it can without starting anything
(``vmscale.preflight``: each provider's library and daemon, free ports, tokens for an open bind),
then starts the pieces one by one, registering how to undo each *before* starting it; if any step
fails — in any group — what this start-up started is stopped in reverse order and the error is
raised. Nothing it adopted is touched: instances and an HAProxy left running by an earlier
``vmscale up`` keep serving.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Mapping
from pathlib import Path

from vmscale.api.app import ServerHandle, create_app, serve_in_thread
from vmscale.api.auth import TokenStore, check_bind_allowed, split_bind
from vmscale.config.schema import VmscaleConfig
from vmscale.control import ControlGroups
from vmscale.controller import Controller
from vmscale.errors import AuthError, StartupError
from vmscale.events import DECISIONS_LOG, EventBus, JsonlWriter
from vmscale.group_runtime import GroupRuntime, build_lb, build_provider, group_dir, state_dir_of
from vmscale.integrations import Integrations
from vmscale.lb.base import LoadBalancer
from vmscale.metrics import MetricFamilies
from vmscale.preflight import reserve
from vmscale.providers.base import Provider
from vmscale.store import open_state_store

__all__ = ["Service", "build_lb", "build_provider", "decisions_log_for", "group_dir", "state_dir_of"]

log = logging.getLogger("vmscale.service")


def decisions_log_for(log_path: Path) -> Path:
    """The rarely rotated copy of everything but ticks, next to the full event log: when ticks
    rotate the full log, the decisions and state changes they pushed out are still here."""
    return log_path.with_name(DECISIONS_LOG)


class Service:
    """Every group of a config, running: ``start()`` recovers each group and starts the loops and the
    API; ``stop()`` ends them.

    ``provider``/``lb`` replace the one group's (tests); ``providers``/``lbs`` replace groups' by name.
    """

    def __init__(
        self,
        cfg: VmscaleConfig,
        *,
        provider: Provider | None = None,
        lb: LoadBalancer | None = None,
        log_path: Path | None = None,
        serve_api: bool = True,
        tokens: TokenStore | None = None,
        providers: Mapping[str, Provider] | None = None,
        lbs: Mapping[str, LoadBalancer] | None = None,
    ) -> None:
        self.cfg = cfg
        self.state_dir = state_dir_of(cfg)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create the state folder {self.state_dir} (state.dir): {exc.strerror or exc}"
            ) from None
        settings = cfg.group_settings()
        if (provider is not None or lb is not None) and len(settings) != 1:
            raise ValueError("provider= and lb= replace the one group's; with several use providers=, lbs=")
        first = settings[0].group.name
        providers = {first: provider} if provider is not None else dict(providers or {})
        lbs = {first: lb} if lb is not None else dict(lbs or {})
        self.groups: list[GroupRuntime] = []
        with contextlib.ExitStack() as undo:  # a failure here closes what was opened so far
            self.store = open_state_store(cfg.state, self.state_dir)
            undo.callback(self.store.close)
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
            self.metrics = MetricFamilies()
            for i, gs in enumerate(settings):
                name = gs.group.name
                prov = (
                    providers[name] if name in providers else build_provider(gs, self.state_dir, cfg.cluster)
                )
                undo.callback(prov.close)
                balancer = lbs[name] if name in lbs else build_lb(gs, group_dir(cfg, gs))
                runtime = GroupRuntime(
                    gs,
                    prov,
                    balancer,
                    store=self.store,
                    events=self.events,
                    families=self.metrics,
                    cluster=cfg.cluster,
                    where=f"groups[{i}]." if cfg.uses_groups else "",
                )
                undo.callback(runtime.integrations.close, group_removed=False)
                self.groups.append(runtime)
            self.tokens = tokens if tokens is not None else TokenStore.load(cfg.api.token_file)
            undo.pop_all()
        self.serve_api = serve_api
        self.api: ServerHandle | None = None
        self._stop = threading.Event()
        self._released = False

    # ------------------------------------------------------------------ the groups

    def group(self, name: str) -> GroupRuntime:
        """The running group called ``name``; ``KeyError`` naming the groups there are."""
        for runtime in self.groups:
            if runtime.name == name:
                return runtime
        raise KeyError(f"no group {name!r} (groups: {', '.join(r.name for r in self.groups)})")

    @property
    def controller(self) -> Controller:
        """The first group's controller: the one group's, for callers that run one."""
        return self.groups[0].controller

    @property
    def provider(self) -> Provider:
        return self.groups[0].provider

    @property
    def lb(self) -> LoadBalancer:
        return self.groups[0].lb

    @property
    def integrations(self) -> Integrations:
        return self.groups[0].integrations

    @property
    def api_url(self) -> str | None:
        if self.api is None:
            return None
        host, _ = split_bind(self.cfg.api.bind)
        return f"http://{host}:{self.api.port}"

    # ------------------------------------------------------------------ start and stop

    def _preflight(self, undo: contextlib.ExitStack) -> socket.socket | None:
        """Everything that can be known to fail before anything starts; returns the API's socket."""
        for runtime in self.groups:
            runtime.preflight()
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
        """Start every group. On any failure, stop what this call started (in reverse order), release
        the providers, store and logs, and re-raise: nothing is left running."""
        with contextlib.ExitStack() as undo:
            undo.callback(self._release)
            sock = self._preflight(undo)
            for runtime in self.groups:
                runtime.start(undo)
            if sock is not None:
                control = ControlGroups([r.controller for r in self.groups], self.events)
                app = create_app(control, metrics=self.metrics, api_config=self.cfg.api, tokens=self.tokens)
                host, port = split_bind(self.cfg.api.bind)
                self.api = serve_in_thread(app, host, port, sock=sock)
                undo.callback(self.api.stop)
            undo.callback(self._join_loops)
            for runtime in self.groups:
                runtime.run(self._stop)
            undo.pop_all()

    def _join_loops(self) -> None:
        self._stop.set()
        for runtime in self.groups:
            runtime.join()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stopped (or the timeout); True if the loops have ended."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, *, terminate: bool = True) -> None:
        """Stop every group; with ``terminate`` remove their instances and balancers as well."""
        if self._released:
            return  # a failed start() already stopped and released everything
        self._join_loops()
        # Every step runs even when an earlier one fails (one group's provider refusing to
        # terminate must not leave the next group running); the first failure is raised after.
        with contextlib.ExitStack() as stops:
            stops.callback(self._release)
            if self.api is not None:
                stops.callback(self.api.stop)
            for runtime in reversed(self.groups):  # run last-in first-out: the first group first
                stops.callback(runtime.stop, terminate=terminate)

    def _release(self) -> None:
        """Close the providers' connections, the logs and the store (instances keep running)."""
        if self._released:
            return
        self._released = True
        for runtime in self.groups:
            runtime.close()
        self.writer.close()
        self.decisions_writer.close()
        self.store.close()
