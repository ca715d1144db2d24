"""``MultiHostProvider``: one group over many libvirt hosts, each reached through its own connection.

It is the libvirt provider for a config with ``[[cluster.hosts]]``, and adds the host to everything:

* ``launch(spec, host=None)`` starts the instance on ``host``, or, without one, where placement
  (``plan.placement``, ``cluster.placement``) puts it, from fresh host facts; the explanation is
  logged and handed to ``on_placement`` for the event log. A name that exists on some host is
  adopted there (idempotent launch). A name last seen on a host that does not answer is *not*
  launched elsewhere: that would make two copies of one name (see ``plan.fencing``).
* ``list(group)`` asks every host at once; each instance records its host in ``details["host"]``.
  The instances of a host that does not answer are reported from its last listing with status
  ``UNKNOWN`` (the status last seen in ``details["last_status"]``), marked ``details["host_state"]``
  = "not answering"/"unreachable" and ``details["unknown"] = "true"``, so the controller can apply
  its grace period instead of thinking they vanished.
* ``terminate``, ``sample``, ``pause``, ``resume`` and ``resize`` (vertical-first: every domain is
  defined with ``max_vcpus`` of room) go to the instance's host; a host without headroom for a
  growth refuses it (``NoHeadroomError``) and the controller adds an instance instead, which
  placement puts where there is room.
* ``migrate(name, host)`` live-migrates it (see ``migrate.py``) and returns it at its new place.

Each host's work is done by a ``HostProvider`` over the inventory's connection for that host.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from vmscale.clock import Clock
from vmscale.config.hosts import ClusterConfig, PlacementConfig
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.errors import HostUnreachableError, InstanceNotFoundError, ProviderError, TemporaryProviderError
from vmscale.hosts.inventory import HostInventory
from vmscale.hosts.moves import move_domain
from vmscale.hosts.remote import HostProvider
from vmscale.plan.fencing import Copy
from vmscale.plan.placement import Placement, Request, place
from vmscale.providers.base import InstanceSpec, ProviderInstance, ProviderStatus, WarmKind
from vmscale.providers.keyed_lock import KeyedLock
from vmscale.providers.libvirt.migrate import MigrationProgress, MigrationResult
from vmscale.providers.libvirt.resize import MemoryFollowsVcpus

log = logging.getLogger(__name__)

UNKNOWN = "unknown"


def unknown_copy(inst: ProviderInstance, reach: str) -> ProviderInstance:
    """``inst`` as last seen on a host that does not answer now."""
    details = {**inst.details, "host_state": reach, UNKNOWN: "true", "last_status": inst.status.value}
    return replace(inst, status=ProviderStatus.UNKNOWN, details=details)


class MultiHostProvider:
    kind = "libvirt"

    def __init__(
        self,
        config: LibvirtProviderConfig,
        inventory: HostInventory,
        *,
        placement: PlacementConfig | None = None,
        on_placement: Callable[[Placement], None] | None = None,
        max_vcpus: int | None = None,
        memory_room: MemoryFollowsVcpus | None = None,
    ) -> None:
        self.config = config
        self.max_vcpus = max_vcpus  # template.max_vcpus: every host's domains get this room to grow
        self.memory_room = memory_room
        self.inventory = inventory
        self.placement = placement or PlacementConfig()
        self.on_placement = on_placement
        self.clock: Clock = inventory.clock
        self._providers: dict[str, HostProvider] = {}
        self._where: dict[str, str] = {}  # instance -> host it was last seen on (or launched/moved to)
        self._seen: dict[str, list[ProviderInstance]] = {}  # host -> its last listing
        self._copies: dict[str, list[Copy]] = {}  # instance -> copies on several hosts, from the last list
        # placed, launch not finished yet: name -> (host, size), counted in the next placements
        self._pending: dict[str, tuple[str, Request]] = {}
        self.migrations: dict[str, MigrationResult] = {}  # instance -> its last migration's figures
        self._guard = threading.Lock()
        self._place_lock = threading.Lock()
        self._lock = KeyedLock()  # per instance name

    # ---------------------------------------------------------------- hosts
    def host_provider(self, host: str) -> HostProvider:
        """The provider for one host (made at first use, once the host's facts are known)."""
        with self._guard:
            existing = self._providers.get(host)
        if existing is not None:
            return existing
        handle = self.inventory.handle(host)
        if handle.facts is None:
            self.inventory.refresh()
        if handle.facts is None:
            st = handle.conn.state()
            raise HostUnreachableError(f"host {host} has not answered yet ({st.last_error})", host=host)
        made = HostProvider(
            self.config,
            host,
            handle.conn,
            handle.limits,
            kvm_offered=handle.facts.kvm,
            max_vcpus=self.max_vcpus,
            memory_room=self.memory_room,
        )
        with self._guard:
            return self._providers.setdefault(host, made)

    def _find(self, name: str) -> str | None:
        """The host running ``name``: the last place seen if it is still there, else a search of every
        answering host. HostUnreachableError when it was last seen on a host that does not answer."""
        last = self._where.get(name)
        if last is not None:
            if not self.inventory.answering(last):
                raise HostUnreachableError(
                    f"{name} was last seen on host {last}, which is not answering: not touching any other "
                    "copy of it until that host answers or is removed",
                    instance=name,
                    host=last,
                )
            if self._exists_on(last, name):
                return last
        for host in self.inventory.names():
            if host == last or not self.inventory.answering(host):
                continue
            try:
                if self._exists_on(host, name):
                    self._where[name] = host
                    return host
            except HostUnreachableError:
                continue  # silent now: it is reported as such; what it holds is fenced when it returns
        return None

    def _remember(self, host: str, inst: ProviderInstance) -> None:
        """Record where ``inst`` is, so it is known (as unknown) if its host stops answering before
        the next listing."""
        with self._guard:
            self._where[inst.name] = host
            for h, rows in self._seen.items():
                self._seen[h] = [i for i in rows if i.name != inst.name]
            self._seen.setdefault(host, []).append(inst)

    def _forget(self, name: str, host: str | None = None) -> None:
        with self._guard:
            if host is None or self._where.get(name) == host:
                self._where.pop(name, None)
            for h, rows in self._seen.items():
                if host is None or h == host:
                    self._seen[h] = [i for i in rows if i.name != name]

    def _exists_on(self, host: str, name: str) -> bool:
        return self.host_provider(host).has_domain(name)

    # ---------------------------------------------------------------- placement
    def choose_host(self, spec: InstanceSpec) -> Placement:
        """Where ``spec`` should go now, from fresh facts and the launches still under way."""
        self.inventory.refresh()
        views = {v.name: v for v in self.inventory.views(spec.group)}
        for name, (host, size) in list(self._pending.items()):
            facts = self.inventory.handle(host).facts
            if facts is not None and name not in facts.group_instances(spec.group) and host in views:
                views[host] = views[host].with_instance(size.vcpus, size.memory_mb)
        req = Request(spec.name, spec.vcpus, spec.memory_mb)
        return place(
            req,
            list(views.values()),
            strategy=self.placement.strategy,
            spread_label=self.placement.spread_label,
        )

    # ---------------------------------------------------------------- lifecycle
    def launch(self, spec: InstanceSpec, host: str | None = None) -> ProviderInstance:
        with self._lock(spec.name):
            found = self._find(spec.name)
            if found is not None:
                if host is not None and host != found:
                    log.warning(
                        "%s already exists on %s: adopting it there, not on %s", spec.name, found, host
                    )
                inst = self.host_provider(found).launch(spec)
                self._remember(found, inst)
                return inst
            if host is None:
                with self._place_lock:
                    decision = self.choose_host(spec)
                    if decision.host is None:
                        raise TemporaryProviderError(f"not starting {decision.reason}", instance=spec.name)
                    self._pending[spec.name] = (decision.host, Request(spec.name, spec.vcpus, spec.memory_mb))
                log.info("placement: %s", decision.reason)
                if self.on_placement is not None:
                    self.on_placement(decision)
                host = decision.host
            try:
                inst = self.host_provider(host).launch(spec)
            finally:
                self._pending.pop(spec.name, None)
            self._remember(host, inst)
            return inst

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0, host: str | None = None) -> None:
        """Remove ``name`` wherever it runs (or only its copy on ``host``, for fencing)."""
        with self._lock(name):
            if host is not None:
                self.host_provider(host).terminate(name, graceful_timeout_s=graceful_timeout_s)
                self._forget(name, host)
                return
            found = self._find(name)
            if found is not None:
                self.host_provider(found).terminate(name, graceful_timeout_s=graceful_timeout_s)
            self._forget(name)

    def _list_host(self, host: str, group: str) -> tuple[str, list[ProviderInstance] | None]:
        if not self.inventory.answering(host):
            return host, None  # in back-off: do not wait for it
        try:
            return host, self.host_provider(host).list(group)
        except HostUnreachableError:
            return host, None

    def list(self, group: str) -> list[ProviderInstance]:
        hosts = self.inventory.names()
        with ThreadPoolExecutor(max_workers=min(16, len(hosts)), thread_name_prefix="list-hosts") as pool:
            results = list(pool.map(lambda h: self._list_host(h, group), hosts))
        by_name: dict[str, list[ProviderInstance]] = {}
        with self._guard:
            for host, listed in results:
                if listed is None:
                    reach = self.inventory.reach(host).value
                    stale = [i for i in self._seen.get(host, []) if i.group == group]
                    listed = [unknown_copy(i, reach) for i in stale]
                else:
                    self._seen[host] = [i for i in self._seen.get(host, []) if i.group != group] + listed
                for inst in listed:
                    by_name.setdefault(inst.name, []).append(inst)
            out = []
            for name, found in by_name.items():
                chosen = self._one_copy(name, found)
                if len(found) == 1 and UNKNOWN not in chosen.details:
                    self._where[name] = chosen.details["host"]  # seen there, and only there
                else:
                    self._where.setdefault(name, chosen.details["host"])
                out.append(chosen)
        return sorted(out, key=lambda i: (i.details.get("host", ""), i.name))

    def _one_copy(self, name: str, found: Sequence[ProviderInstance]) -> ProviderInstance:
        """One entry per name; several copies are remembered for ``copies`` (the controller fences)."""
        if len(found) == 1:
            self._copies.pop(name, None)
            return found[0]
        self._copies[name] = [Copy(i.details["host"], i.created_at) for i in found]
        recorded = self._where.get(name)
        ranked = sorted(
            found, key=lambda i: (i.details["host"] != recorded, -i.created_at, i.details["host"])
        )
        others = ",".join(i.details["host"] for i in ranked[1:])
        return replace(ranked[0], details={**ranked[0].details, "duplicate_on": others})

    def copies(self, name: str) -> tuple[Copy, ...]:
        """The copies of ``name`` on different hosts found by the last ``list`` (empty: only one)."""
        return tuple(self._copies.get(name, ()))

    def sample(self, names: Sequence[str]) -> dict[str, float]:
        on: dict[str, list[str]] = {}
        for name in names:
            host = self._where.get(name)
            if host is not None and self.inventory.answering(host):
                on.setdefault(host, []).append(name)
        out: dict[str, float] = {}
        for host, subset in on.items():
            try:
                out.update(self.host_provider(host).sample(subset))
            except ProviderError as exc:
                log.debug("no samples from %s: %s", host, exc)
        return out

    def _on(self, name: str) -> HostProvider:
        host = self._find(name)
        if host is None:
            raise InstanceNotFoundError(f"no domain {name} on any host", instance=name)
        return self.host_provider(host)

    def pause(self, name: str, kind: WarmKind = "paused") -> None:
        self._on(name).pause(name, kind)

    def resume(self, name: str) -> None:
        self._on(name).resume(name)

    # ---------------------------------------------------------------- resize (Resizer role)
    @property
    def can_shrink(self) -> bool:
        return self.config.vcpu_unplug  # as on one host: see providers/libvirt/resize.py

    def resize(self, name: str, vcpus: int) -> None:
        """Resize ``name`` live on its host (``NoHeadroomError`` when that host has no room)."""
        self._on(name).resize(name, vcpus)

    # ---------------------------------------------------------------- migration
    def migrate(
        self,
        name: str,
        host: str,
        *,
        progress: Callable[[MigrationProgress], None] | None = None,
        timeout_s: float | None = None,
    ) -> ProviderInstance:
        """Live-migrate ``name`` to ``host``; returns it there. On failure it stays where it was."""
        with self._lock(name):
            src = self._find(name)
            if src is None:
                raise InstanceNotFoundError(f"no domain {name} on any host to migrate", instance=name)
            if src == host:
                return self._listed_on(host, name)
            result = move_domain(
                name,
                self.host_provider(src),
                self.host_provider(host),
                self.inventory,
                timeout_s=timeout_s or self.config.migrate_timeout_s,
                progress=progress,
            )
            self.migrations[name] = result
            inst = self._listed_on(host, name)
            self._remember(host, inst)
            return replace(inst, details={**inst.details, **result.details()})

    def _listed_on(self, host: str, name: str) -> ProviderInstance:
        inst = self.host_provider(host).describe(name)
        if inst is None:
            raise InstanceNotFoundError(f"{name} is not on {host}", instance=name)
        return inst

    def close(self) -> None:
        self.inventory.close()


def build_multihost(
    libvirt: LibvirtProviderConfig,
    cluster: ClusterConfig,
    *,
    max_vcpus: int | None = None,
    memory_room: MemoryFollowsVcpus | None = None,
) -> MultiHostProvider:
    """A group's provider when ``[[cluster.hosts]]`` is set (``group_runtime.build_provider`` calls
    it): the group's libvirt settings and its template's room to grow, over the process-wide hosts."""
    inventory = HostInventory.of(libvirt, cluster)
    return MultiHostProvider(
        libvirt, inventory, placement=cluster.placement, max_vcpus=max_vcpus, memory_room=memory_room
    )
