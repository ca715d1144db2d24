"""An in-memory group over several hosts, for the controller's unit tests: what ``MultiHostProvider``
does over libvirt (placement, a silent host's instances reported as unknown, copies of one name on
two hosts, live migration), with hosts a test can silence and bring back, on a fake clock.

It plays every role the controller asks of a multi-host provider: ``Lifecycle``, ``CpuSampler``,
``Migrator`` (``providers.base``) and ``HostsRole`` (``hosts.role``), with its ``inventory``. The
real one runs against real daemons in tests/e2e/test_multihost*.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from vmscale.clock import FakeClock
from vmscale.errors import HostUnreachableError, InstanceNotFoundError, TemporaryProviderError
from vmscale.hosts.values import HostFacts, HostStatus
from vmscale.hosts.watch import Reach
from vmscale.plan.fencing import Copy
from vmscale.plan.placement import HostLimits, HostView, Placement, Request, place
from vmscale.providers.base import InstanceSpec, ProviderInstance, ProviderStatus
from vmscale.providers.migration import MigrationProgress


@dataclass
class FakeHost:
    name: str
    cpus: int = 4
    memory_mb: float = 8192.0
    labels: dict[str, str] = field(default_factory=dict)
    silent_since: float | None = None  # fake-clock time it stopped answering
    cordoned: bool = False
    draining: bool = False
    others: int = 0  # domains of other groups


class FakeInventory:
    def __init__(self, hosts: Sequence[str], clock: FakeClock, grace_s: float) -> None:
        self.clock = clock
        self.grace_s = grace_s
        self.hosts = {h: FakeHost(h) for h in hosts}
        self.domains: dict[tuple[str, str], ProviderInstance] = {}  # (host, name) -> instance there
        self.refreshes = 0

    def names(self) -> list[str]:
        return list(self.hosts)

    def reach(self, host: str) -> Reach:
        since = self.hosts[host].silent_since
        if since is None:
            return Reach.UP
        return Reach.UNREACHABLE if self.clock.monotonic() - since >= self.grace_s else Reach.NOT_ANSWERING

    def answering(self, host: str) -> bool:
        return self.hosts[host].silent_since is None

    def on(self, host: str, group: str | None = None) -> list[ProviderInstance]:
        return [i for (h, _), i in self.domains.items() if h == host and (group is None or i.group == group)]

    def refresh(self) -> list[HostStatus]:
        self.refreshes += 1
        return self.statuses()

    def statuses(self) -> list[HostStatus]:
        out = []
        for h in self.hosts.values():
            groups: dict[str, list[str]] = {}
            for inst in self.on(h.name):
                groups.setdefault(inst.group, []).append(inst.name)
            running = self.on(h.name)
            facts = HostFacts(
                cpus=h.cpus,
                memory_total_mb=h.memory_mb,
                memory_available_mb=h.memory_mb - 512 * len(running),
                memory_committed_mb=512.0 * len(running),
                running_vcpus=sum(i.vcpus for i in running),
                domains=len(running) + h.others,
                instances={g: tuple(sorted(n)) for g, n in groups.items()},
            )
            reach = self.reach(h.name)
            out.append(
                HostStatus(
                    h.name, f"fake://{h.name}", dict(h.labels), reach, h.cordoned, h.draining, facts,
                    0.0, "" if reach is Reach.UP else "connection refused", 0.0,
                )
            )  # fmt: skip
        return out

    def views(self, group: str) -> list[HostView]:
        out = []
        for st in self.statuses():
            f = st.facts
            assert f is not None
            out.append(
                HostView(
                    st.name, f.cpus, f.memory_free_mb, f.memory_total_mb, f.running_vcpus, f.domains,
                    len(f.group_instances(group)), st.labels, HostLimits(), st.reach is Reach.UP,
                    st.cordoned, st.draining,
                )
            )  # fmt: skip
        return out

    def set_flags(self, name: str, *, cordoned: bool, draining: bool) -> None:
        if name not in self.hosts:
            raise ValueError(f"unknown host {name!r}")
        self.hosts[name].cordoned = cordoned or draining
        self.hosts[name].draining = draining


class FakeHostsProvider:
    kind = "libvirt"

    def __init__(
        self, clock: FakeClock, hosts: Sequence[str] = ("h1", "h2"), *, grace_s: float = 5.0
    ) -> None:
        self.clock = clock
        self.inventory = FakeInventory(hosts, clock, grace_s)
        self.on_placement: Callable[[Placement], None] | None = None
        self.where: dict[str, str] = {}  # name -> host it was last seen on (as the real one keeps)
        self.calls: list[tuple[str, ...]] = []
        self.fail_migrations: set[str] = set()  # names whose migration fails
        self.cpu: dict[str, float] = {}  # what ``sample`` reports (50 % when not set)
        self.created = 0.0

    # ---------------------------------------------------------------- test controls
    def silence(self, host: str) -> None:
        self.inventory.hosts[host].silent_since = self.clock.monotonic()

    def answer(self, host: str) -> None:
        self.inventory.hosts[host].silent_since = None

    def copy_on(self, host: str, name: str) -> None:
        """A second copy of ``name`` on ``host``, made behind the controller's back."""
        src = next(i for (_, n), i in self.inventory.domains.items() if n == name)
        self.created += 1
        self.inventory.domains[(host, name)] = replace(
            src, details={**src.details, "host": host}, created_at=src.created_at + self.created
        )

    def hosts_of(self, group: str) -> dict[str, set[str]]:
        """Where each name of ``group`` exists, host by host (the fake's "virsh list")."""
        out: dict[str, set[str]] = {h: set() for h in self.inventory.hosts}
        for (h, n), inst in self.inventory.domains.items():
            if inst.group == group:
                out[h].add(n)
        return out

    def _check(self, host: str, name: str | None = None) -> None:
        if not self.inventory.answering(host):
            raise HostUnreachableError(f"host {host} is not answering", instance=name, host=host)

    # ---------------------------------------------------------------- Lifecycle
    def launch(self, spec: InstanceSpec, host: str | None = None) -> ProviderInstance:
        self.calls.append(("launch", spec.name))
        last = self.where.get(spec.name)
        if last is not None:
            self._check(last, spec.name)
            found = self.inventory.domains.get((last, spec.name))
            if found is not None:
                return found
        if host is None:
            views = self.inventory.views(spec.group)
            decision = place(Request(spec.name, spec.vcpus, spec.memory_mb), views)
            if self.on_placement is not None:
                self.on_placement(decision)
            if decision.host is None:
                raise TemporaryProviderError(f"not starting {decision.reason}", instance=spec.name)
            host = decision.host
        self._check(host, spec.name)
        inst = ProviderInstance(
            spec.name, spec.group, ProviderStatus.RUNNING, f"http://198.51.100.{spec.index}:8000",
            spec.vcpus, self.clock.now(), {"host": host, "address": f"198.51.100.{spec.index}"},
        )  # fmt: skip
        self.inventory.domains[(host, spec.name)] = inst
        self.where[spec.name] = host
        return inst

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0, host: str | None = None) -> None:
        self.calls.append(("terminate", name, host or ""))
        target = host or self.where.get(name)
        if target is None:
            return
        self._check(target, name)
        self.inventory.domains.pop((target, name), None)
        if self.where.get(name) == target:
            self.where.pop(name, None)

    def list(self, group: str) -> list[ProviderInstance]:
        by_name: dict[str, list[ProviderInstance]] = {}
        for (h, n), inst in sorted(self.inventory.domains.items()):
            if inst.group != group:
                continue
            if not self.inventory.answering(h):
                reach = self.inventory.reach(h).value
                details = {**inst.details, "host_state": reach, "unknown": "true", "last_status": "running"}
                inst = replace(inst, status=ProviderStatus.UNKNOWN, details=details)
            by_name.setdefault(n, []).append(inst)
        out = []
        for name, found in by_name.items():
            recorded = self.where.get(name)
            ranked = sorted(found, key=lambda i: (i.details["host"] != recorded, -i.created_at))
            chosen = ranked[0]
            if len(found) > 1:
                others = ",".join(i.details["host"] for i in ranked[1:])
                chosen = replace(chosen, details={**chosen.details, "duplicate_on": others})
            out.append(chosen)
        return out

    def copies(self, name: str) -> tuple[Copy, ...]:
        found = [Copy(h, i.created_at) for (h, n), i in self.inventory.domains.items() if n == name]
        return tuple(found) if len(found) > 1 else ()

    def sample(self, names: Sequence[str]) -> dict[str, float]:
        answering = [n for n in names if n in self.where and self.inventory.answering(self.where[n])]
        return {n: self.cpu.get(n, 50.0) for n in answering}

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- Migrator
    def migrate(
        self,
        name: str,
        host: str,
        *,
        progress: Callable[[MigrationProgress], None] | None = None,
        timeout_s: float | None = None,
    ) -> ProviderInstance:
        self.calls.append(("migrate", name, host))
        src = self.where.get(name)
        if src is None or (src, name) not in self.inventory.domains:
            raise InstanceNotFoundError(f"no domain {name}", instance=name)
        self._check(src, name)
        self._check(host, name)
        if progress is not None:
            progress(MigrationProgress(name, src, host, 1.5, 100, 50, 50))
        if name in self.fail_migrations:
            raise TemporaryProviderError(f"migration of {name} to {host} failed; it stays on {src}")
        inst = self.inventory.domains.pop((src, name))
        moved = replace(
            inst,
            details={**inst.details, "host": host, "migrated_from": src, "migration_total_ms": "2500",
                     "migration_downtime_ms": "280"},
        )  # fmt: skip
        self.inventory.domains[(host, name)] = moved
        self.where[name] = host
        return moved
