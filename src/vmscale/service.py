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

Every service takes part in its scope's leader election (``vmscale.leadership``; one elector for
all its groups): the first election runs in ``start``, so a leader has recovered its groups before
its API answers, and a standby serves the store's view at once. Only the leader touches the
balancers and the providers. ``stop`` removes the instances only when asked, while leading, and
when no other controller of the scope is alive to take over; otherwise it hands over (releases the
lease) and leaves everything running.
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
from vmscale.clock import SystemClock
from vmscale.config.schema import VmscaleConfig
from vmscale.control import ControlGroups
from vmscale.errors import AuthError, StartupError, StoreError
from vmscale.events import DECISIONS_LOG, EventBus, JsonlWriter
from vmscale.group_runtime import GroupRuntime, build_lb, build_provider, group_dir, state_dir_of
from vmscale.integrations import Integrations
from vmscale.lb.base import LoadBalancer
from vmscale.leader import ElectionLoop, Elector, Role, controller_id, holder_gone, scope_of, timing_of
from vmscale.leader.metrics import LeadershipCollector
from vmscale.leadership import ControlRouter, LeaderView
from vmscale.metrics import MetricFamilies
from vmscale.preflight import reserve
from vmscale.providers.base import Provider
from vmscale.sdnotify import notify
from vmscale.store import Lease, open_state_store

__all__ = ["Service", "build_lb", "build_provider", "decisions_log_for", "group_dir", "state_dir_of"]

log = logging.getLogger("vmscale.service")


def advertised_url(bind: str, port: int, advertise: str = "") -> str:
    """The API URL other controllers and the CLI use: ``api.advertise``, else ``bind``'s, with this
    machine's name for a wildcard bind (nobody can connect to 0.0.0.0 from elsewhere)."""
    if advertise:
        return advertise.rstrip("/")
    host, _ = split_bind(bind)
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
            # The elector's own connection: a renewal never queues behind the controllers' writes.
            self.lease_store = open_state_store(cfg.state, self.state_dir)
            undo.callback(self.lease_store.close)
            leases = self.lease_store.leases(scope_of(cfg))
            self.elector = Elector(
                leases,
                controller_id(),
                clock=SystemClock(),
                timing=timing_of(cfg.state.lease),
                holder_gone=holder_gone,
                on_change=self._role_changed,
            )
            self.election = ElectionLoop(self.elector)
            self.metrics.registry.register(LeadershipCollector(self.elector, leases.scope))
            view = LeaderView(self.elector, leases)
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
                    elector=self.elector,
                    view=view,
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
        self._started = False

    # ------------------------------------------------------------------ leadership

    def _role_changed(self, old: Role, new: Role, lease: Lease | None, why: str) -> None:
        for runtime in self.groups:
            runtime.terms.on_change(old, new, lease, why)
        if self._started and new is not Role.STOPPED:  # systemd's `status` shows it
            notify(f"STATUS={self.status_line()}")

    def status_line(self) -> str:
        """One line for systemd's STATUS= and the log: this controller's role and its API."""
        who = self.controller.leadership()
        if who.role == "leader":
            role = f"leading at epoch {who.epoch}"
        elif who.leader_id:
            role = f"standby (leader {who.leader_id} at {who.leader_address or '?'})"
        else:
            role = "standby (nobody leads yet)"
        return f"{self.groups_label()}: {role}; control API on {self.elector.address or 'none'}"

    def groups_label(self) -> str:
        """'group web', or 'groups web, batch': what this process runs, for status lines."""
        names = [r.name for r in self.groups]
        return f"group {names[0]}" if len(names) == 1 else f"groups {', '.join(names)}"

    def _alone(self) -> bool:
        """No other controller of the scope is alive: none heard from within one lease duration,
        except those of this host whose process is gone (a crashed controller never says goodbye)."""
        me, lease_s = self.elector.holder, self.cfg.state.lease.duration_s
        try:
            others = [
                c.id
                for c in self.elector.leases.controllers()
                if c.id != me and c.last_seen_age_s < lease_s and not holder_gone(c.id)
            ]
        except StoreError as exc:
            log.warning("cannot tell whether another controller runs (%s): keeping the instances", exc)
            return False
        if others:
            log.info("handing over to %s: the instances keep running", ", ".join(others))
        return not others

    # ------------------------------------------------------------------ the groups

    def group(self, name: str) -> GroupRuntime:
        """The running group called ``name``; ``KeyError`` naming the groups there are."""
        for runtime in self.groups:
            if runtime.name == name:
                return runtime
        raise KeyError(f"no group {name!r} (groups: {', '.join(r.name for r in self.groups)})")

    @property
    def controller(self) -> ControlRouter:
        """The first group's control plane (its leading controller, or the store's view on a
        standby): the one group's, for callers that run one."""
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
        the providers, store and logs, and re-raise: nothing is left running.

        The first election runs here: a leader starts the balancers and recovers every group before
        its API answers; a standby starts neither and serves the store's view."""
        with contextlib.ExitStack() as undo:
            undo.callback(self._release)
            sock = self._preflight(undo)
            if sock is not None:
                self.elector.address = advertised_url(
                    self.cfg.api.bind, sock.getsockname()[1], self.cfg.api.advertise
                )
            self.elector.step()
            undo.callback(self.election.stop, release=True)  # hands the lease over if start-up fails
            for runtime in self.groups:
                runtime.start(undo)
            if sock is not None:
                control = ControlGroups([r.controller for r in self.groups], self.events)
                app = create_app(control, metrics=self.metrics, api_config=self.cfg.api, tokens=self.tokens)
                host, port = split_bind(self.cfg.api.bind)
                self.api = serve_in_thread(app, host, port, sock=sock)
                undo.callback(self.api.stop)
            self.election.start()
            undo.callback(self._join_loops)
            for runtime in self.groups:
                runtime.run(self._stop)
            undo.pop_all()
        self._started = True
        log.info("%s", self.status_line())

    def _join_loops(self) -> None:
        self._stop.set()
        for runtime in self.groups:
            runtime.join()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stopped (or the timeout); True if the loops have ended."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()
        for runtime in self.groups:
            runtime.interrupt()

    def stop(self, *, terminate: bool = True) -> None:
        """Stop every group. With ``terminate``, a leader that no other live controller of its scope
        could replace removes the instances and balancers (``vmscale up`` alone, as before
        elections); otherwise everything keeps running and the lease is released for the next
        leader at once."""
        if self._released:
            return  # a failed start() already stopped and released everything
        self._join_loops()
        terminate = terminate and self.elector.is_leader and self._alone()
        # Every step runs even when an earlier one fails (one group's provider refusing to
        # terminate must not leave the next group running); the first failure is raised after.
        with contextlib.ExitStack() as stops:
            stops.callback(self._release)
            stops.callback(self.election.stop, release=True)
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
        self.lease_store.close()
