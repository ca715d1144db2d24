"""One group of a running ``vmscale up``: its provider, balancer, integrations, terms and loop.

``Service`` (``vmscale.service``) owns what the groups share — the store, the event bus and its
logs, the metric families, the control API — and one ``GroupRuntime`` per group. A group's pieces
are built from its ``GroupSettings`` alone, so two groups never see each other's settings.

Leadership is the process's (one elector for every group, ``vmscale.leadership``); each group runs
its own ``Terms`` on its loop thread: while the process leads, a fresh ``Controller`` fenced by the
lease reconciles the group; while it stands by, the group's API answers from the store.

Independence at run time: each group reconciles on a thread of its own, and an exception in one
group's tick is reported as that group's ``error`` event and never reaches another group's loop.
Start-up is still one transaction for all groups: a group whose provider or balancer cannot start
is a start-up error (the service stops whatever it started and exits 2), because a controller
that silently runs fewer groups than its file names is worse than one that refuses to start.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from vmscale.config.hosts import ClusterConfig, HostConfig
from vmscale.config.schema import GroupSettings, VmscaleConfig
from vmscale.controller import Controller
from vmscale.controller.fence import LeaseFence
from vmscale.errors import NotLeaderError, ProviderError, ProviderUnavailableError, StartupError, StoreError
from vmscale.event_kinds import ErrorReported
from vmscale.events import EventBus
from vmscale.health import build_health_checker
from vmscale.integrations import Integrations
from vmscale.lb.base import LoadBalancer
from vmscale.lb.none import NullBalancer
from vmscale.leader import Elector
from vmscale.leadership import ControlRouter, LeaderView, Terms
from vmscale.metrics import ControllerMetrics, MetricFamilies
from vmscale.policy import build_policy_set
from vmscale.preflight import check_free, missing_library
from vmscale.providers.base import Provider
from vmscale.standby import StoreControl
from vmscale.store import Lease, Store

LOOP_JOIN_TIMEOUT_S = 30.0
log = logging.getLogger("vmscale.service")


def state_dir_of(cfg: VmscaleConfig) -> Path:
    return Path(cfg.state.dir).expanduser().resolve()


def group_dir(cfg: VmscaleConfig, settings: GroupSettings) -> Path:
    """Where a group keeps what would clash with another group's (its HAProxy's config, pid file and
    sockets). A one-group file keeps today's layout (the state folder itself), so an installation
    that runs now is adopted after an upgrade; with ``[[groups]]`` each group has
    ``<state>/groups/<name>``. Provider files (process records, VM overlays) are per instance and
    instance names carry their group, so all groups share the provider folders."""
    state = state_dir_of(cfg)
    return state / "groups" / settings.group.name if cfg.uses_groups else state


def _cluster_of(cfg: GroupSettings, cluster: ClusterConfig | None) -> ClusterConfig:
    """The ``[cluster]`` a group runs in: the process-wide one, else ``cfg``'s own (a whole file)."""
    if cluster is not None:
        return cluster
    return cfg.cluster if isinstance(cfg, VmscaleConfig) else ClusterConfig()


def group_hosts(cfg: GroupSettings, cluster: ClusterConfig | None = None) -> list[HostConfig]:
    """The ``[[cluster.hosts]]`` a group's instances are placed on: none for the process provider
    or a libvirt group on one host (``build_provider`` spans them by the same rule)."""
    return list(_cluster_of(cfg, cluster).hosts) if cfg.provider.kind == "libvirt" else []


def build_provider(cfg: GroupSettings, state_dir: Path, cluster: ClusterConfig | None = None) -> Provider:
    """The group's provider; ``StartupError`` with the install command if its library is missing.
    ``cluster`` (the process-wide ``[cluster]``, by default ``cfg``'s own when it is a whole file)
    makes a libvirt group's provider span its hosts."""
    kind = cfg.provider.kind
    cluster = _cluster_of(cfg, cluster)
    try:
        if kind == "process":
            from vmscale.providers.process import ProcessProvider

            return ProcessProvider(cfg.provider.process, state_dir, fib_max_n=cfg.workload.fib.max_n)
        if kind == "libvirt":
            from vmscale.providers.libvirt.resize import memory_room

            t = cfg.template
            room = memory_room(t.vcpus, t.vcpu_ceiling, t.memory_mb, t.memory_ceiling)
            if group_hosts(cfg, cluster):
                from vmscale.hosts.multihost import build_multihost

                return build_multihost(cfg.provider.libvirt, cluster, max_vcpus=t.max_vcpus, memory_room=room)
            from vmscale.providers.libvirt.provider import LibvirtProvider

            return LibvirtProvider(cfg.provider.libvirt, state_dir, max_vcpus=t.max_vcpus, memory_room=room)
    except ImportError as exc:
        raise (missing_library(kind, exc) or exc) from None
    from vmscale.providers.fake import FakeProvider

    return FakeProvider()


def build_lb(cfg: GroupSettings, group_state: Path) -> LoadBalancer:
    if cfg.lb.kind == "haproxy":
        from vmscale.lb.haproxy import HaproxyLoadBalancer

        return HaproxyLoadBalancer(cfg.lb.haproxy, cfg.group.name, group_state / "haproxy", cfg.health)
    return NullBalancer()


class GroupRuntime:
    """One group, built and (after ``start``) running. ``where`` is the group's config path for
    messages: ``""`` for a one-group file, ``groups[1].`` with several."""

    def __init__(
        self,
        settings: GroupSettings,
        provider: Provider,
        lb: LoadBalancer,
        *,
        store: Store,
        events: EventBus,
        families: MetricFamilies,
        elector: Elector,
        view: LeaderView,
        cluster: ClusterConfig | None = None,
        where: str = "",
    ) -> None:
        self.settings = settings
        self.name = settings.group.name
        self.where = where
        self.provider = provider
        self.lb = lb
        self._store = store
        self._events = events
        self._cluster = cluster
        self._elector = elector
        self.metrics = ControllerMetrics(self.name, families)
        self._publish = events.for_group(self.name).publish
        # Webhooks, the original client and file_sd hear this group's decisions and rotation
        # changes on the bus; hooks and external metrics are called by the controller itself.
        self.integrations = Integrations(settings, publish=self._publish)
        events.add_listener(self.integrations.on_event)
        policies = build_policy_set(
            settings.policies, min_count=settings.group.min, max_count=settings.group.max
        )
        standby = StoreControl(
            settings,
            store,
            events,
            provider=provider.kind,
            lb=lb.kind,
            frontend_url=lb.frontend_url(),
            policies=policies.names,
            hosts=group_hosts(settings, cluster),
        )
        # What the API serves: the leading term's controller, or the store's view on a standby.
        self.controller = ControlRouter(standby, view, elector.step_down)
        self.terms = Terms(elector, self._take_over, self.controller, view, self._report, lb.close)
        self.led = False  # this group's balancer was started (or adopted) by a term of this process
        self._thread: threading.Thread | None = None

    def preflight(self) -> None:
        """What can be known to fail before anything starts: the provider's daemon, and the
        balancer's ports (unless a balancer left running earlier is adopted)."""
        try:
            self.provider.list(self.name)
        except ProviderUnavailableError as exc:
            raise StartupError(self._named(str(exc))) from None
        except ProviderError:
            pass  # anything else: recovery reports it and the first ticks retry with back-off
        if self.settings.lb.kind == "haproxy" and not self.lb.alive():
            haproxy = self.settings.lb.haproxy
            check_free(haproxy.bind, f"{self.where}lb.haproxy.bind")
            check_free(haproxy.stats_bind, f"{self.where}lb.haproxy.stats_bind")

    def _named(self, message: str) -> str:
        return f"group {self.name}: {message}" if self.where else message

    def _report(self, message: str) -> None:
        self._publish(ErrorReported("leadership", self._named(message)))

    def _take_over(self, lease: Lease) -> Controller:
        """Begin a term: the balancer (adopted when it runs), a fresh controller fenced by ``lease``,
        and restart recovery from the store and the provider, as after a crash."""
        self.led = True
        self.lb.start()
        view = self._store.fenced(lease)
        elector = self._elector
        ctl = Controller(
            self.settings,
            self.provider,
            view,
            lb=self.lb,
            events=self._events,
            health=build_health_checker(self.settings.health),
            metrics=self.metrics,
            integrations=self.integrations,
            cluster=self._cluster,
            fence=LeaseFence(lambda: elector.is_leader, view.check_fence, lease.epoch),
        )
        try:
            ctl.recover()
        except BaseException:
            ctl.abandon()
            raise
        return ctl

    def start(self, undo: contextlib.ExitStack) -> None:
        """While this process leads: start the balancer and recover the group (the first term),
        registering on ``undo`` how to take each back. A standby starts neither."""
        if not self._elector.is_leader:
            return
        if not self.lb.alive():  # adopted balancers are not ours to stop on failure
            undo.callback(self.lb.stop)  # registered first: a half-started HAProxy is stopped too
        self.terms.begin()
        undo.callback(self.end_term, terminate=False)  # saves state, closes probes

    def run(self, stop: threading.Event) -> None:
        """Lead whenever elected, on a thread of this group's own, until ``stop`` is set."""
        self._thread = threading.Thread(target=self.terms.run, args=(stop,), name=f"vmscale-loop-{self.name}")
        self._thread.start()

    def interrupt(self) -> None:
        self.terms.interrupt()

    def join(self) -> None:
        self.terms.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=LOOP_JOIN_TIMEOUT_S)

    def end_term(self, *, terminate: bool) -> bool:
        """After ``join``: stop the term this process leads, if any, and with ``terminate`` remove the
        group's instances; True if it removed them."""
        ctl = self.terms.controller
        if ctl is None:
            return False  # a standby: nothing of the group is this controller's to touch
        try:
            ctl.shutdown(terminate=terminate)
        except NotLeaderError as exc:  # FencedError included
            log.warning("leadership was lost during shutdown (%s): the instances are the new leader's", exc)
            ctl.abandon()
            return False
        except StoreError as exc:  # nothing can be recorded: leave everything for the next start
            log.warning("the store failed during shutdown (%s): what was not removed yet keeps running", exc)
            ctl.abandon()
            return False
        return terminate

    def stop(self, *, terminate: bool) -> None:
        """After ``join``: stop acting; with ``terminate`` (which the service asks only of a leader
        no other live controller could replace) remove the group's instances and balancer."""
        removed = self.end_term(terminate=terminate)
        self.integrations.close(group_removed=removed)
        if removed:
            self.lb.stop()
        elif self.led:
            self.lb.close()  # kept instances keep their balancer; only vmscale's receiver stops

    def close(self) -> None:
        """Close the provider's connections and stop the integrations' workers (instances keep running)."""
        self.integrations.close(group_removed=False)
        self.provider.close()
