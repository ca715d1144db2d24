"""One group of a running ``vmscale up``: its provider, balancer, integrations, controller and loop.

``Service`` (``vmscale.service``) owns what the groups share — the store, the event bus and its
logs, the metric families, the control API — and one ``GroupRuntime`` per group. A group's pieces
are built from its ``GroupSettings`` alone, so two groups never see each other's settings.

Independence at run time: each group reconciles on a thread of its own, and an exception in one
group's tick is reported as that group's ``error`` event and never reaches another group's loop.
Start-up is still one transaction for all groups: a group whose provider or balancer cannot start
is a start-up error (the service stops whatever it started and exits 2), because a controller
that silently runs fewer groups than its file names is worse than one that refuses to start.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from vmscale.config.hosts import ClusterConfig
from vmscale.config.schema import GroupSettings, VmscaleConfig
from vmscale.controller import Controller
from vmscale.errors import ProviderError, ProviderUnavailableError, StartupError
from vmscale.events import EventBus
from vmscale.health import build_health_checker
from vmscale.integrations import Integrations
from vmscale.lb.base import LoadBalancer
from vmscale.lb.none import NullBalancer
from vmscale.metrics import ControllerMetrics, MetricFamilies
from vmscale.preflight import check_free, missing_library
from vmscale.providers.base import Provider
from vmscale.store import Store

LOOP_JOIN_TIMEOUT_S = 30.0


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


def build_provider(cfg: GroupSettings, state_dir: Path, cluster: ClusterConfig | None = None) -> Provider:
    """The group's provider; ``StartupError`` with the install command if its library is missing.
    ``cluster`` (the process-wide ``[cluster]``, by default ``cfg``'s own when it is a whole file)
    makes a libvirt group's provider span its hosts."""
    kind = cfg.provider.kind
    if cluster is None:
        cluster = cfg.cluster if isinstance(cfg, VmscaleConfig) else ClusterConfig()
    try:
        if kind == "process":
            from vmscale.providers.process import ProcessProvider

            return ProcessProvider(cfg.provider.process, state_dir, fib_max_n=cfg.workload.fib.max_n)
        if kind == "libvirt" and cluster.hosts:
            from vmscale.hosts.multihost import build_multihost

            return build_multihost(cfg.provider.libvirt, cluster)
        if kind == "libvirt":
            from vmscale.providers.libvirt.provider import LibvirtProvider

            return LibvirtProvider(cfg.provider.libvirt, state_dir, max_vcpus=cfg.template.max_vcpus)
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
        cluster: ClusterConfig | None = None,
        where: str = "",
    ) -> None:
        self.settings = settings
        self.name = settings.group.name
        self.where = where
        self.provider = provider
        self.lb = lb
        publish = events.for_group(self.name).publish
        # Webhooks, the original client and file_sd hear this group's decisions and rotation
        # changes on the bus; hooks and external metrics are called by the controller itself.
        self.integrations = Integrations(settings, publish=publish)
        events.add_listener(self.integrations.on_event)
        self.controller = Controller(
            settings,
            provider,
            store,
            lb=lb,
            events=events,
            health=build_health_checker(settings.health),
            metrics=ControllerMetrics(self.name, families),
            integrations=self.integrations,
            cluster=cluster,
        )
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

    def start(self, undo: contextlib.ExitStack) -> None:
        """Start the balancer and recover the group, registering on ``undo`` how to take each back."""
        if not self.lb.alive():  # adopted balancers are not ours to stop on failure
            undo.callback(self.lb.stop)  # registered first: a half-started HAProxy is stopped too
        self.lb.start()
        self.controller.recover()
        undo.callback(self.controller.shutdown, terminate=False)  # saves state, closes probes

    def run(self, stop: threading.Event) -> None:
        """Reconcile on a thread of this group's own until ``stop`` is set."""
        self._thread = threading.Thread(
            target=self.controller.run, args=(stop,), name=f"vmscale-loop-{self.name}"
        )
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=LOOP_JOIN_TIMEOUT_S)

    def stop(self, *, terminate: bool) -> None:
        """After ``join``: stop acting; with ``terminate`` remove the group's instances and balancer."""
        self.controller.shutdown(terminate=terminate)
        self.integrations.close(group_removed=terminate)
        if terminate:
            self.lb.stop()
        else:
            self.lb.close()  # kept instances keep their balancer; only vmscale's receiver stops

    def close(self) -> None:
        """Close the provider's connections and stop the integrations' workers (instances keep running)."""
        self.integrations.close(group_removed=False)
        self.provider.close()
