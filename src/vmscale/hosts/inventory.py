"""The hosts a group runs on: one kept-open connection each, their facts, state and the controller's
wishes (cordon, drain), and the views placement decides over.

    inv = HostInventory.from_config(cfg)        # the [cluster] hosts, or the implicit local one
    inv.refresh()                               # facts from every host at once, each call bounded
    inv.statuses()                              # what `vmscale hosts` shows
    inv.views("web")                            # HostView per host, for plan.placement
    inv.cordon("h2"); inv.drain("h2")           # the controller's desired state, not observed
    inv.connection("h1").call(...)              # what the libvirt provider uses for that host

A host's state, most important first: **unreachable** (not answering for longer than
``cluster.unreachable_after_s``), **draining**, **cordoned**, **not answering** (within the grace
period), **up**, **unknown** (never answered yet). Only an ``up`` host that is neither cordoned nor
draining is offered to placement.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from vmscale.clock import Clock, SystemClock
from vmscale.config.hosts import ClusterConfig, HostConfig
from vmscale.config.schema import VmscaleConfig
from vmscale.errors import ProviderError
from vmscale.hosts.connection import HostConnection
from vmscale.hosts.facts import HostFacts, read_facts
from vmscale.hosts.watch import HostWatch, Reach
from vmscale.plan.placement import HostLimits, HostView
from vmscale.providers.libvirt.connection import LibvirtConnection

log = logging.getLogger(__name__)

Connect = Callable[[HostConfig, float], LibvirtConnection]


@dataclass(frozen=True, slots=True)
class HostStatus:
    """One host as a person (``vmscale hosts``) or the API sees it."""

    name: str
    uri: str
    labels: dict[str, str]
    reach: Reach
    cordoned: bool
    draining: bool
    facts: HostFacts | None  # the last facts read (None: never reached)
    facts_age_s: float | None
    error: str  # the last connection error while not answering
    retry_in_s: float

    @property
    def state(self) -> str:
        if self.reach is Reach.UNREACHABLE:
            return "unreachable"
        if self.draining:
            return "draining"
        if self.cordoned:
            return "cordoned"
        return self.reach.value


class HostHandle:
    """A configured host: its connection, limits, last facts and the controller's flags."""

    def __init__(self, config: HostConfig, conn: HostConnection, limits: HostLimits) -> None:
        self.config = config
        self.conn = conn
        self.limits = limits
        self.cordoned = config.cordoned
        self.draining = False
        self.facts: HostFacts | None = None
        self.facts_at: float | None = None

    @property
    def name(self) -> str:
        return self.config.name


class HostInventory:
    def __init__(
        self,
        hosts: Sequence[HostConfig],
        *,
        cluster: ClusterConfig,
        defaults: HostLimits,
        call_timeout_s: float,
        clock: Clock | None = None,
        connect: Connect | None = None,
    ) -> None:
        if not hosts:
            raise ValueError("an inventory needs at least one host")
        self.clock = clock or SystemClock()
        self.cluster = cluster
        make = connect or (lambda h, timeout: LibvirtConnection(h.uri, timeout))
        self._handles: dict[str, HostHandle] = {}
        for h in hosts:
            watch = HostWatch(
                cluster.unreachable_after_s, cluster.reconnect_initial_s, cluster.reconnect_max_s
            )
            conn = HostConnection(h.name, make(h, call_timeout_s), watch, clock=self.clock)
            limits = HostLimits(
                max_vcpu_overcommit=h.max_vcpu_overcommit or defaults.max_vcpu_overcommit,
                min_free_memory_mb=(
                    defaults.min_free_memory_mb if h.min_free_memory_mb is None else h.min_free_memory_mb
                ),
                max_instances=h.max_instances,
            )
            self._handles[h.name] = HostHandle(h, conn, limits)
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, cfg: VmscaleConfig, *, clock: Clock | None = None, connect: Connect | None = None
    ) -> HostInventory:
        lv = cfg.provider.libvirt
        return cls(
            cfg.cluster.effective_hosts(lv.uri),
            cluster=cfg.cluster,
            defaults=HostLimits(lv.max_vcpu_overcommit, lv.min_free_memory_mb),
            call_timeout_s=lv.call_timeout_s,
            clock=clock,
            connect=connect,
        )

    # ----------------------------------------------------------------------------- lookup
    def names(self) -> list[str]:
        return list(self._handles)

    def handle(self, name: str) -> HostHandle:
        try:
            return self._handles[name]
        except KeyError:
            raise ValueError(f"unknown host {name!r}; the hosts are: {', '.join(self._handles)}") from None

    def config(self, name: str) -> HostConfig:
        return self.handle(name).config

    def connection(self, name: str) -> HostConnection:
        return self.handle(name).conn

    def reach(self, name: str) -> Reach:
        return self.handle(name).conn.state().reach

    def answering(self, name: str) -> bool:
        """Whether calls to the host may be made now (up, or never tried): not in a failure streak."""
        return self.reach(name) in (Reach.UP, Reach.UNKNOWN)

    # ----------------------------------------------------------------------------- observe
    def _refresh_one(self, handle: HostHandle) -> None:
        known_kvm = handle.facts.kvm if handle.facts else None
        try:
            facts = handle.conn.call("host facts", lambda c: read_facts(c, kvm=known_kvm))
        except ProviderError as exc:
            log.debug("host %s: no facts this time: %s", handle.name, exc)
            return
        with self._lock:
            handle.facts = facts
            handle.facts_at = self.clock.monotonic()

    def refresh(self) -> list[HostStatus]:
        """Read every host's facts at once (each bounded by the call timeout); hosts in back-off
        are skipped until their next attempt. Returns the statuses after the refresh."""
        handles = list(self._handles.values())
        with ThreadPoolExecutor(max_workers=min(16, len(handles)), thread_name_prefix="host-facts") as pool:
            list(pool.map(self._refresh_one, handles))
        return self.statuses()

    def statuses(self) -> list[HostStatus]:
        now = self.clock.monotonic()
        out = []
        for h in self._handles.values():
            st = h.conn.state()
            with self._lock:
                facts, at = h.facts, h.facts_at
            out.append(
                HostStatus(
                    name=h.name,
                    uri=h.config.uri,
                    labels=dict(h.config.labels),
                    reach=st.reach,
                    cordoned=h.cordoned,
                    draining=h.draining,
                    facts=facts,
                    facts_age_s=None if at is None else now - at,
                    error=st.last_error,
                    retry_in_s=st.retry_in_s,
                )
            )
        return out

    def views(self, group: str) -> list[HostView]:
        """What placement sees: the last facts and the flags; a host never reached has no room."""
        out = []
        for h in self._handles.values():
            with self._lock:
                facts = h.facts
            reach = h.conn.state().reach
            out.append(
                HostView(
                    name=h.name,
                    cpus=facts.cpus if facts else 0,
                    memory_free_mb=facts.memory_free_mb if facts else 0.0,
                    memory_total_mb=facts.memory_total_mb if facts else 0.0,
                    running_vcpus=facts.running_vcpus if facts else 0,
                    domains=facts.domains if facts else 0,
                    group_instances=len(facts.group_instances(group)) if facts else 0,
                    labels=dict(h.config.labels),
                    limits=h.limits,
                    reachable=facts is not None and reach is Reach.UP,
                    cordoned=h.cordoned,
                    draining=h.draining,
                )
            )
        return out

    # ----------------------------------------------------------------------------- wishes
    def cordon(self, name: str) -> None:
        """Nothing new is placed on the host; what runs there stays."""
        self.handle(name).cordoned = True

    def uncordon(self, name: str) -> None:
        h = self.handle(name)
        h.cordoned = False
        h.draining = False

    def drain(self, name: str) -> None:
        """Cordon, and mark the host for its instances to be moved off (the controller moves them)."""
        h = self.handle(name)
        h.cordoned = True
        h.draining = True

    def close(self) -> None:
        for h in self._handles.values():
            h.conn.close()
