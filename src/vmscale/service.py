"""The composition root: from a validated config to a running group (provider, balancer, store,
controller, control API), and back down cleanly.

This is the one place that knows every concrete implementation; everything else receives
interfaces. ``vmscale up`` and ``vmscale demo`` both run through ``Service``.

Start-up is a transaction. ``Service.start`` first checks what it can without starting anything
(``vmscale.preflight``: the provider's library and daemon, free ports, tokens for an open bind),
then starts the pieces one by one, registering how to undo each *before* starting it; if any step
fails, what this start-up started is stopped in reverse order and the error is raised. Nothing it
adopted is touched: instances and an HAProxy left running by an earlier ``vmscale up`` keep serving.

Every service takes part in its scope's leader election (``vmscale.leadership``): the first election
runs in ``start``, so a leader has recovered its group before its API answers, and a standby serves
the store's view at once. Only the leader touches the balancer and the provider. ``stop`` removes
the instances only when asked, while leading, and when no other controller of the scope is alive
to take over; otherwise it hands over (releases the lease) and leaves everything running.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from pathlib import Path

from vmscale.api.app import ServerHandle, create_app, serve_in_thread
from vmscale.api.auth import TokenStore, check_bind_allowed, split_bind
from vmscale.clock import SystemClock
from vmscale.config.schema import VmscaleConfig
from vmscale.controller import Controller
from vmscale.controller.fence import LeaseFence
from vmscale.errors import (
    AuthError,
    NotLeaderError,
    ProviderError,
    ProviderUnavailableError,
    StartupError,
    StoreError,
)
from vmscale.event_kinds import ErrorReported
from vmscale.events import DECISIONS_LOG, EventBus, JsonlWriter
from vmscale.health import build_health_checker
from vmscale.integrations import Integrations
from vmscale.lb.base import LoadBalancer
from vmscale.lb.none import NullBalancer
from vmscale.leader import ElectionLoop, Elector, Role, controller_id, holder_gone, scope_of, timing_of
from vmscale.leader.metrics import LeadershipCollector
from vmscale.leadership import ControlRouter, LeaderView, Terms
from vmscale.metrics import ControllerMetrics
from vmscale.policy import build_policy_set
from vmscale.preflight import check_free, missing_library, reserve
from vmscale.providers.base import Provider
from vmscale.sdnotify import notify
from vmscale.standby import StoreControl
from vmscale.store import Lease, open_state_store

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
            # The elector's own connection: a renewal never queues behind the controller's writes.
            self.lease_store = open_state_store(cfg.state, self.state_dir)
            undo.callback(self.lease_store.close)
            self.tokens = tokens if tokens is not None else TokenStore.load(cfg.api.token_file)
            undo.pop_all()
        self.metrics = ControllerMetrics(cfg.group.name)
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
        standby = StoreControl(
            cfg,
            self.store,
            self.events,
            provider=self.provider.kind,
            lb=self.lb.kind,
            frontend_url=self.lb.frontend_url(),
            policies=build_policy_set(cfg.policies, min_count=cfg.group.min, max_count=cfg.group.max).names,
        )
        # What the API serves (and tests drive): the leading term's controller, or the store's view.
        self.controller = ControlRouter(standby, view, self.elector.step_down)
        self.terms = Terms(self.elector, self._take_over, self.controller, view, self._report, self.lb.close)
        self.serve_api = serve_api
        self.api: ServerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False
        self._led = False  # this service led at some point (it started or adopted the balancer)

    # ------------------------------------------------------------------ leadership

    def _take_over(self, lease: Lease) -> Controller:
        """Begin a term: the balancer (adopted when it runs), a fresh controller fenced by ``lease``,
        and restart recovery from the store and the provider, as after a crash."""
        self._led = True
        self.lb.start()
        view = self.store.fenced(lease)
        elector = self.elector
        ctl = Controller(
            self.cfg,
            self.provider,
            view,
            lb=self.lb,
            events=self.events,
            metrics=self.metrics,
            health=build_health_checker(self.cfg.health),
            integrations=self.integrations,
            fence=LeaseFence(lambda: elector.is_leader, view.check_fence, lease.epoch),
        )
        try:
            ctl.recover()
        except BaseException:
            ctl.abandon()
            raise
        return ctl

    def _role_changed(self, old: Role, new: Role, lease: Lease | None, why: str) -> None:
        self.terms.on_change(old, new, lease, why)
        if self._thread is not None and new is not Role.STOPPED:  # systemd's `status` shows it
            notify(f"STATUS={self.status_line()}")

    def _report(self, message: str) -> None:
        log.warning("%s", message)
        self.events.publish(ErrorReported("leadership", message))

    def status_line(self) -> str:
        """One line for systemd's STATUS= and the log: this controller's role and its API."""
        who = self.controller.leadership()
        if who.role == "leader":
            role = f"leading at epoch {who.epoch}"
        elif who.leader_id:
            role = f"standby (leader {who.leader_id} at {who.leader_address or '?'})"
        else:
            role = "standby (nobody leads yet)"
        return f"group {self.cfg.group.name}: {role}; control API on {self.elector.address or 'none'}"

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

    def _end_last_term(self, terminate: bool) -> bool:
        """Stop the term this service leads, if any; True if it removed the group's instances."""
        ctl = self.terms.controller
        if ctl is None:
            return False  # a standby: nothing of the group is this controller's to touch
        remove = terminate and self.elector.is_leader and self._alone()
        try:
            ctl.shutdown(terminate=remove)
        except NotLeaderError as exc:  # FencedError included
            log.warning("leadership was lost during shutdown (%s): the instances are the new leader's", exc)
            ctl.abandon()
            return False
        except StoreError as exc:  # nothing can be recorded: leave everything for the next start
            log.warning("the store failed during shutdown (%s): what was not removed yet keeps running", exc)
            ctl.abandon()
            return False
        return remove

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
        the provider, store and logs, and re-raise: nothing is left running.

        The first election runs here: a leader starts the balancer and recovers before its API
        answers; a standby starts neither and serves the store's view."""
        with contextlib.ExitStack() as undo:
            undo.callback(self._release)
            sock = self._preflight(undo)
            if sock is not None:
                self.elector.address = advertised_url(
                    self.cfg.api.bind, sock.getsockname()[1], self.cfg.api.advertise
                )
            self.elector.step()
            undo.callback(self.election.stop, release=True)  # hands the lease over if start-up fails
            if self.elector.is_leader:
                if not self.lb.alive():  # adopted balancers are not ours to stop on failure
                    undo.callback(self.lb.stop)  # registered first: a half-started HAProxy is stopped too
                self.terms.begin()
                undo.callback(self._end_last_term, False)  # saves state, closes probes
            if sock is not None:
                app = create_app(
                    self.controller, metrics=self.metrics, api_config=self.cfg.api, tokens=self.tokens
                )
                host, port = split_bind(self.cfg.api.bind)
                self.api = serve_in_thread(app, host, port, sock=sock)
                undo.callback(self.api.stop)
            self.election.start()
            self._thread = threading.Thread(target=self.terms.run, args=(self._stop,), name="vmscale-loop")
            undo.callback(self._join_loop)
            self._thread.start()
            undo.pop_all()
        log.info("%s", self.status_line())

    def _join_loop(self) -> None:
        self._stop.set()
        self.terms.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stopped (or the timeout); True if the loop has ended."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()
        self.terms.interrupt()

    def stop(self, *, terminate: bool = True) -> None:
        """Stop. With ``terminate``, a leader that no other live controller of its scope could
        replace removes its instances and balancer (``vmscale up`` alone, as before elections);
        otherwise everything keeps running and the lease is released for the next leader at once."""
        if self._released:
            return  # a failed start() already stopped and released everything
        self._join_loop()
        removed = self._end_last_term(terminate)
        self.integrations.close(group_removed=removed)
        if self.api is not None:
            self.api.stop()
        self.election.stop(release=True)
        if removed:
            self.lb.stop()
        elif self._led:
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
        self.lease_store.close()
