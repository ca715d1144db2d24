"""The provider contract.

A provider is the only thing that knows how to make an instance exist. It plays small roles,
each a Protocol of its own: ``Lifecycle`` (launch, terminate, list, close) and ``CpuSampler``
(sample) every provider has; ``WarmPool`` (pause, resume, and the parking kinds it supports),
``Migrator`` (live migration to another host), ``Resizer`` (a running instance's vCPUs, live) and
``Cloner`` (launch from a group's golden snapshot, made ahead) are optional. ``ProviderRoles.of``
sorts a provider object into its roles once, at start-up, and each part of the controller receives
only the roles it uses. Which kinds have which role is declared once, in ``vmscale.provider_catalog``,
and a unit test holds the classes to it. The controller assumes only what is written here:

* **Launches are slow, asynchronous and may fail halfway.** ``launch`` returns once the
  instance has been *started* (a process spawned, a domain defined and started); it does not
  wait for the workload to answer. Readiness is the controller's business (health checks).
* **Names are deterministic** (``GROUP-N``, chosen by the controller). ``launch`` with a name
  that already exists must adopt or finish what is there instead of making a second one, so
  a retry after a crash is idempotent.
* **Terminate is idempotent.** Terminating something that does not exist is success.
  It cleans up everything the launch made (processes, domains, overlays, cgroups).
* **Errors are typed** (see ``vmscale.errors``): ``TemporaryProviderError`` (retry with
  back-off), ``PermanentProviderError`` (a person must act), ``InstanceNotFoundError``.
  Foreign exceptions never escape a provider.
* **Every call is bounded in time**: a provider never blocks forever on a hung daemon.
* ``list`` reports what really exists for a group, found from the provider's own records
  (libvirt metadata, process command lines), not from the caller's memory. This is what
  restart reconciliation compares against the store.
* ``list`` may report an instance it cannot see right now as ``ProviderStatus.UNKNOWN``: a
  provider over several hosts does so for the instances of a host that stopped answering (their
  guests usually keep running). Unknown is neither running nor gone.
* ``sample`` is cheap and non-blocking where the platform allows it. CPU is a percentage of
  the instance's *own* vCPUs (0..100), computed from deltas between calls; the first call for
  an instance establishes a baseline and returns nothing for it.
* ``resize`` returns once the provider has changed the instance (a vCPU hot-added, a quota
  written); the workload takes the new CPUs a moment later, and says so on its ``/healthz``
  (``cpus``). ``list`` reports the new count from then on, and the first CPU sample after a
  resize is only a baseline (a percentage of the new size). A resize to the current count is a
  no-op; out of range or unsupported (shrinking where ``can_shrink`` is false) is a
  ``PermanentProviderError``.
* Providers are called from the controller's worker threads; implementations must be safe to
  call concurrently for *different* instance names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from vmscale.provider_catalog import capabilities
from vmscale.providers.migration import MigrationProgress

WarmKind = Literal["paused", "saved"]


def warm_kinds_of(kind: str) -> frozenset[WarmKind]:
    """A provider class's warm kinds, as the provider catalog declares them (one declaration)."""
    return frozenset(k for k in capabilities(kind).warm_kinds if k in ("paused", "saved"))  # type: ignore[misc]


def instance_port(base_port: int, index: int) -> int:
    """The one port rule: instance N listens on (a process) or is forwarded to (a user-mode VM)
    ``base_port + N``, so names, ports and the docs always agree."""
    return base_port + index


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """What to launch (its port follows from ``index``: ``instance_port``).

    ``epoch`` is the launching controller's term of leadership (0: no election). A provider keeps it
    with the instance (process record, domain metadata) and reports it as ``details["epoch"]``, so a
    controller that finds an instance of a newer epoch knows that another one leads."""

    group: str
    name: str
    index: int
    vcpus: int = 1
    memory_mb: int = 512
    # Extra arguments for the workload (e.g. {"fib_max_n": "35"}); providers pass them through.
    workload_args: Mapping[str, str] = field(default_factory=dict)
    epoch: int = 0


class ProviderStatus(StrEnum):
    STARTING = "starting"  # made but not yet running (e.g. domain defined, not started)
    RUNNING = "running"
    PAUSED = "paused"  # SIGSTOPped process, suspended domain
    SAVED = "saved"  # libvirt managed save: nothing held in memory
    STOPPED = "stopped"  # exists but not running (exited process not reaped, shut-off domain)
    # Its host does not answer: last seen there (details["last_status"]), may well still be running.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ProviderInstance:
    name: str
    group: str
    status: ProviderStatus
    endpoint: str  # base URL of the workload, e.g. "http://127.0.0.1:18101"
    vcpus: int = 1
    created_at: float = 0.0  # epoch seconds
    details: Mapping[str, str] = field(default_factory=dict)  # pid, uuid, overlay path, epoch...


@runtime_checkable
class Lifecycle(Protocol):
    kind: str

    def launch(self, spec: InstanceSpec) -> ProviderInstance:
        """Start an instance (idempotent by ``spec.name``). Raises ProviderError subclasses."""
        ...

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0) -> None:
        """Stop and clean up; graceful first, forceful after the timeout. Missing is success."""
        ...

    def list(self, group: str) -> list[ProviderInstance]:
        """Everything of this group that exists right now, from the provider's own records."""
        ...

    def close(self) -> None:
        """Release connections; does NOT terminate instances."""
        ...


@runtime_checkable
class CpuSampler(Protocol):
    def sample(self, names: Sequence[str]) -> dict[str, float]:
        """CPU utilisation in percent of each instance's own vCPUs, for those it can measure."""
        ...


@runtime_checkable
class WarmPool(Protocol):
    warm_kinds: frozenset[WarmKind]  # which ways of parking this provider can do

    def pause(self, name: str, kind: WarmKind = "paused") -> None:
        """Park an instance for the warm pool (SIGSTOP / suspend / managed save)."""
        ...

    def resume(self, name: str) -> None:
        """Bring a parked instance back to running."""
        ...


@runtime_checkable
class Migrator(Protocol):
    def migrate(
        self,
        name: str,
        host: str,
        *,
        progress: Callable[[MigrationProgress], None] | None = None,
        timeout_s: float | None = None,
    ) -> ProviderInstance:
        """Live-migrate a running instance to ``host``; returns it there (same name, and for bridged
        guests the same address). Bounded; on failure it raises and the instance stays where it was,
        serving. ``progress`` is called from the calling thread while the copy runs."""
        ...


@runtime_checkable
class Resizer(Protocol):
    can_shrink: bool  # whether ``resize`` may take vCPUs away live (not libvirt 9.0 + QEMU 7.2 TCG)

    def resize(self, name: str, vcpus: int) -> None:
        """Give a running instance ``vcpus`` vCPUs, live (see the contract above)."""
        ...


@dataclass(frozen=True, slots=True)
class GoldenSnapshot:
    """A group's golden snapshot as operators see it (``Cloner.prepare``): which one, how large,
    and what making it cost. Nothing secret (the identity token stays in the provider)."""

    key: str  # changes with everything the guest's memory depends on (image, size, workload...)
    made_at: float  # wall clock
    size_mb: float  # the saved memory every clone restores
    boot_s: float  # define to the backend answering, while it was made
    save_s: float
    made_now: bool  # False: one made earlier (by another run) was found complete and kept

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Cloner(Protocol):
    def restores_clones(self) -> bool:
        """Whether launches restore clones of a golden snapshot (``launch = "clone"``): only then
        has ``prepare`` something to make. (A method, not an attribute, so that ``issubclass``
        still works on this Protocol.)"""
        ...

    def prepare(self, spec: InstanceSpec) -> GoldenSnapshot | None:
        """Make what launches of ``spec``'s group need ahead of time (a golden snapshot: tens of
        seconds), so the first scale-up does not wait for it, and say what is ready. Idempotent;
        None when the provider boots every instance."""
        ...

    def drop_goldens(self, group: str) -> None:
        """Remove what ``prepare`` made for the group (the group itself is being removed)."""
        ...


@runtime_checkable
class Provider(Lifecycle, CpuSampler, Protocol):
    """What every provider is: a lifecycle and a CPU sampler. Further roles are optional."""


@dataclass(frozen=True, slots=True)
class ProviderRoles:
    """A provider sorted into the roles it plays (``None`` where it plays none)."""

    lifecycle: Lifecycle
    sampler: CpuSampler
    warm_pool: WarmPool | None = None
    migrator: Migrator | None = None
    resizer: Resizer | None = None
    cloner: Cloner | None = None

    @classmethod
    def of(cls, provider: Provider) -> ProviderRoles:
        return cls(
            lifecycle=provider,
            sampler=provider,
            warm_pool=provider if isinstance(provider, WarmPool) else None,
            migrator=provider if isinstance(provider, Migrator) else None,
            resizer=provider if isinstance(provider, Resizer) else None,
            cloner=provider if isinstance(provider, Cloner) else None,
        )
