"""What every state store offers, the rows it returns, and how it fails.

Two backends implement ``Store``: SQLite (``sqlite.py``, the embedded default, one host) and
PostgreSQL (``postgres.py``, shared by controllers on several machines). Both keep the same tables
(``migrations/``) and run the same SQL (``sql.py``), so a history exported from one imports into
the other unchanged.

Leadership lives in the store too. ``store.leases(scope)`` is one controller scope's lease and
controller registry (``LeaseStore``); ``store.fenced(lease)`` is a view of the store whose every
write first checks, in the same transaction, that ``lease`` is still the scope's current lease, and
raises ``FencedError`` otherwise. A controller that was paused or cut off and comes back with an
old lease therefore cannot change the recorded state, whatever its own clock says.

Times in rows (``t``, ``launched_at``...) are the caller's epoch seconds, as today. Lease times are
the STORE's clock (PostgreSQL's ``clock_timestamp()``; the host clock for SQLite, which is one
host), so the clocks of two controller machines never have to agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from vmscale.errors import NotLeaderError, StoreError

if TYPE_CHECKING:
    pass


class FencedError(StoreError, NotLeaderError):
    """The write was refused: the caller's lease is no longer the current one (another controller
    took over, or the lease was released). The caller must stop acting and stand by: it is a
    ``NotLeaderError`` too, so whoever stops a controller that lost leadership catches both."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer vmscale (its schema version is above what this one knows)."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached right now (server restarting, network): temporary, retry later."""


@dataclass
class InstanceRow:
    name: str
    group: str
    index: int
    state: str
    endpoint: str = ""
    vcpus: int = 1
    warm: bool = False
    launched_at: float | None = None
    ready_at: float | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HostWishRow:
    """What an operator wants of one host: nothing new placed on it (``cordoned``), its instances
    moved off (``draining``, which implies cordoned). Who asked, why and when, for ``vmscale hosts``."""

    host: str
    cordoned: bool
    draining: bool
    actor: str
    reason: str = ""
    updated_at: float = 0.0

    def view(self) -> dict[str, Any]:
        """As ``vmscale hosts`` and ``GET /v1/hosts`` show it (``HostInfo.wish``)."""
        return {
            "cordoned": self.cordoned,
            "draining": self.draining,
            "actor": self.actor,
            "reason": self.reason,
            "t": self.updated_at,
        }


@dataclass
class GroupRow:
    name: str
    desired: int
    paused: bool
    policy_state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease held: proof, for ``fenced`` and ``renew``, of leadership of ``scope`` at ``epoch``.

    ``epoch`` grows by one on every new acquisition of the scope, by anyone; it never repeats, so
    it names one term of leadership. ``renewed_at``/``expires_at`` are store-clock epoch seconds.
    """

    scope: str
    holder: str
    epoch: int
    address: str
    acquired_at: float
    renewed_at: float
    expires_at: float

    @property
    def ttl_s(self) -> float:
        return self.expires_at - self.renewed_at


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """Who leads a scope, as the store sees it now. ``holder`` is empty after a release."""

    scope: str
    holder: str
    epoch: int
    address: str
    age_s: float  # since the last acquisition or renewal
    expires_in_s: float  # negative once expired

    @property
    def held(self) -> bool:
        return bool(self.holder) and self.expires_in_s > 0


@dataclass(frozen=True, slots=True)
class ControllerInfo:
    """One `vmscale up` process of a scope, from the registry every controller writes to."""

    id: str
    scope: str
    address: str
    role: str  # "leader" or "standby", as the controller last reported it
    started_at: float
    last_seen_age_s: float  # store clock
    leads: bool  # it holds the scope's unexpired lease right now (the store's view, not its own)


class LeaseStore(Protocol):
    """One scope's lease and controller registry (``Store.leases(scope)``).

    Every operation is one short transaction and is atomic with respect to fenced writes.
    """

    scope: str

    def try_acquire(
        self, holder: str, ttl_s: float, *, address: str = "", replacing: str = ""
    ) -> Lease | None:
        """The lease, newly acquired with the next epoch, if it is free: never held, released,
        expired, already ``holder``'s, or held by ``replacing`` (a holder known to be dead);
        otherwise ``None``."""
        ...

    def renew(self, lease: Lease, ttl_s: float) -> Lease:
        """Extend ``lease`` to ``ttl_s`` from now; ``FencedError`` if it is no longer current."""
        ...

    def release(self, lease: Lease) -> bool:
        """Give the lease up now (graceful hand-over: the next holder does not wait for expiry).
        False if it was no longer current (nothing to release)."""
        ...

    def current(self) -> LeaderInfo | None:
        """Who leads, as of the store's clock; ``None`` if nobody ever held the scope."""
        ...

    def heartbeat(self, controller_id: str, address: str, role: str) -> None:
        """Record that this controller is alive (registry row, ``last_seen`` = store now)."""
        ...

    def forget(self, controller_id: str) -> None:
        """Remove a controller from the registry (on a clean exit)."""
        ...

    def controllers(self) -> list[ControllerInfo]:
        """Every controller of the scope in the registry, the leader first."""
        ...


class Store(Protocol):
    """The state store: groups, instances and their transitions, decisions, leadership.
    Opened with ``vmscale.store.open_store`` (SQLite or PostgreSQL)."""

    url: str  # where the data lives, safe to print (never a password)

    # -- groups
    def load_group(self, name: str) -> GroupRow | None: ...

    def save_group(
        self, name: str, desired: int, paused: bool, policy_state: dict[str, Any], t: float
    ) -> None: ...

    # -- instances
    def put_instance(self, row: InstanceRow, t: float, *, src: str | None = None, reason: str = "") -> None:
        """Insert or update an instance; when ``src`` is given, also record the transition."""
        ...

    def instances(self, group: str, *, include_gone: bool = False) -> list[InstanceRow]: ...

    def transitions(self, name: str) -> list[tuple[float, str, str, str]]:
        """(t, src, dst, reason) of one instance, oldest first."""
        ...

    # -- decisions
    def append_decision(self, group: str, t: float, actor: str, record: dict[str, Any]) -> None: ...

    def decisions(self, group: str, limit: int = 50) -> list[dict[str, Any]]:
        """The latest ``limit`` decisions, oldest first."""
        ...

    # -- hosts
    def host_wishes(self) -> list[HostWishRow]:
        """Every host's last recorded wish, by host name."""
        ...

    def put_host_wish(self, row: HostWishRow) -> None:
        """Record (replace) one host's wish; ``row.updated_at`` is its time."""
        ...

    # -- leadership
    def leases(self, scope: str) -> LeaseStore: ...

    def fenced(self, lease: Lease) -> Store:
        """This store, with every write refused (``FencedError``) unless ``lease`` is current."""
        ...

    def check_fence(self) -> None:
        """A fenced view: ``FencedError`` unless its lease is current right now (one short read; for
        a provider or balancer call that no fenced write precedes). An unfenced store: nothing."""
        ...

    def close(self) -> None: ...
