"""The store's SQL, written once for both backends (``?`` placeholders; see ``engine.Dialect``).

``SqlStore`` implements ``base.Store`` over an ``Engine``. ``fenced(lease)`` returns a second
``SqlStore`` on the same engine whose writes begin by reading the scope's lease row under the
write lock (``SELECT ... FOR UPDATE`` in PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds
the only write lock) and refuse with ``FencedError`` unless the lease is still current. Because
the check and the write are one transaction, and acquiring the lease takes the same lock, no
write of an old term can land after a new term began.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from vmscale.store import lease as rules
from vmscale.store import migrations
from vmscale.store.base import (
    ControllerInfo,
    GroupRow,
    HostWishRow,
    InstanceRow,
    LeaderInfo,
    Lease,
    LeaseStore,
)
from vmscale.store.engine import Engine, Tx

T = TypeVar("T")

_LEASE = ("scope", "holder", "epoch", "address", "acquired_at", "renewed_at", "expires_at")
_INSTANCE = ("name", "grp", "idx", "state", "endpoint", "vcpus", "warm", "launched_at", "ready_at", "details")
_GROUP = ("name", "desired", "paused", "policy_state", "updated_at")
_CONTROLLER = ("id", "scope", "address", "role", "started_at", "last_seen")
_HOST_WISH = ("host", "cordoned", "draining", "actor", "reason", "updated_at")


def upsert(table: str, columns: tuple[str, ...], *, values: str = "", keep: tuple[str, ...] = ()) -> str:
    """INSERT of ``columns`` that updates the existing row (keyed by the first column) instead,
    except the ``keep`` columns. ``values`` replaces the default ``?`` placeholders."""
    key = columns[0]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key and c not in keep)
    values = values or ", ".join("?" for _ in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


_UPSERT_LEASE = upsert("leases", _LEASE)
_UPSERT_GROUP = upsert("groups", _GROUP)
_UPSERT_INSTANCE = upsert("instances", (*_INSTANCE, "updated_at"))
_UPSERT_HOST_WISH = upsert("host_wishes", _HOST_WISH)


def store_now(tx: Tx, engine: Engine) -> float:
    return float(tx.execute(f"SELECT {engine.dialect.now}")[0][0])


def read_lease(tx: Tx, engine: Engine, scope: str, *, lock: bool = True) -> Lease | None:
    """The scope's lease row; with ``lock``, locked until the transaction ends."""
    suffix = engine.dialect.lock_row if lock else ""
    rows = tx.execute(f"SELECT {', '.join(_LEASE)} FROM leases WHERE scope = ?{suffix}", (scope,))
    if not rows or int(rows[0][2]) == 0:  # no row, or only the placeholder of ensure_lease_row
        return None
    s, holder, epoch, address, acquired, renewed, expires = rows[0]
    return Lease(s, holder, int(epoch), address, float(acquired), float(renewed), float(expires))


def ensure_lease_row(tx: Tx, scope: str) -> None:
    """Make sure the scope's lease row exists (epoch 0: never held), so that there is a row for
    ``FOR UPDATE`` to lock: two first acquisitions then queue on it instead of both inserting."""
    tx.execute(
        f"INSERT INTO leases ({', '.join(_LEASE)}) VALUES (?, '', 0, '', 0, 0, 0) "
        "ON CONFLICT (scope) DO NOTHING",
        (scope,),
    )


def write_lease(tx: Tx, row: Lease) -> None:
    tx.execute(
        _UPSERT_LEASE,
        (row.scope, row.holder, row.epoch, row.address, row.acquired_at, row.renewed_at, row.expires_at),
    )


class SqlStore:
    """``base.Store`` over an engine; ``fence`` set = the fenced view of ``fenced()``."""

    def __init__(self, engine: Engine, fence: Lease | None = None) -> None:
        self.engine = engine
        self.url = engine.url
        self.fence = fence
        self.upgrade: migrations.Upgrade | None = None  # what opening did to the schema (backends set it)

    def _migrate(self) -> None:
        """Bring the schema up to date on open; a refusal (or any failure) closes the engine."""
        try:
            self.upgrade = migrations.upgrade(self.engine)
        except BaseException:
            self.engine.close()
            raise

    def _write(self, fn: Callable[[Tx], T]) -> T:
        fence = self.fence

        def fenced_fn(tx: Tx) -> T:
            if fence is not None:
                rules.check(read_lease(tx, self.engine, fence.scope), fence)
            return fn(tx)

        return self.engine.run(fenced_fn, write=True)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.engine.run(lambda tx: tx.execute(sql, args), write=False)

    @property
    def _epoch(self) -> int | None:
        return self.fence.epoch if self.fence is not None else None

    # -- groups ---------------------------------------------------------------------------------

    def load_group(self, name: str) -> GroupRow | None:
        rows = self._read("SELECT name, desired, paused, policy_state FROM groups WHERE name = ?", (name,))
        if not rows:
            return None
        n, desired, paused, ps = rows[0]
        return GroupRow(n, int(desired), bool(paused), json.loads(ps))

    def save_group(
        self, name: str, desired: int, paused: bool, policy_state: dict[str, Any], t: float
    ) -> None:
        args = (name, desired, bool(paused), json.dumps(policy_state), t)
        self._write(lambda tx: tx.execute(_UPSERT_GROUP, args))

    # -- instances ------------------------------------------------------------------------------

    def put_instance(self, row: InstanceRow, t: float, *, src: str | None = None, reason: str = "") -> None:
        values = (
            row.name,
            row.group,
            row.index,
            row.state,
            row.endpoint,
            row.vcpus,
            bool(row.warm),
            row.launched_at,
            row.ready_at,
            json.dumps(row.details),
            t,
        )
        epoch = self._epoch

        def put(tx: Tx) -> None:
            tx.execute(_UPSERT_INSTANCE, values)
            if src is not None:
                tx.execute(
                    "INSERT INTO transitions (name, t, src, dst, reason, epoch) VALUES (?, ?, ?, ?, ?, ?)",
                    (row.name, t, src, row.state, reason, epoch),
                )

        self._write(put)

    def instances(self, group: str, *, include_gone: bool = False) -> list[InstanceRow]:
        sql = f"SELECT {', '.join(_INSTANCE)} FROM instances WHERE grp = ?"
        if not include_gone:
            sql += " AND state <> 'gone'"
        rows = self._read(sql + " ORDER BY idx, name", (group,))
        return [
            InstanceRow(
                r[0], r[1], int(r[2]), r[3], r[4], int(r[5]), bool(r[6]), r[7], r[8], json.loads(r[9])
            )
            for r in rows
        ]

    def transitions(self, name: str) -> list[tuple[float, str, str, str]]:
        rows = self._read("SELECT t, src, dst, reason FROM transitions WHERE name = ? ORDER BY id", (name,))
        return [(float(t), s, d, r) for t, s, d, r in rows]

    # -- decisions ------------------------------------------------------------------------------

    def append_decision(self, group: str, t: float, actor: str, record: dict[str, Any]) -> None:
        args = (group, t, actor, json.dumps(record, default=str), self._epoch)
        self._write(
            lambda tx: tx.execute(
                "INSERT INTO decisions (grp, t, actor, record, epoch) VALUES (?, ?, ?, ?, ?)", args
            )
        )

    def decisions(self, group: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT t, actor, record FROM decisions WHERE grp = ? ORDER BY id DESC LIMIT ?", (group, limit)
        )
        out = []
        for t, actor, rec in reversed(rows):
            d = json.loads(rec)
            d.setdefault("t", t)
            d.setdefault("actor", actor)
            out.append(d)
        return out

    # -- hosts ----------------------------------------------------------------------------------

    def host_wishes(self) -> list[HostWishRow]:
        rows = self._read(f"SELECT {', '.join(_HOST_WISH)} FROM host_wishes ORDER BY host")
        return [HostWishRow(h, bool(c), bool(d), a, r, float(t)) for h, c, d, a, r, t in rows]

    def put_host_wish(self, row: HostWishRow) -> None:
        args = (row.host, bool(row.cordoned), bool(row.draining), row.actor, row.reason, row.updated_at)
        self._write(lambda tx: tx.execute(_UPSERT_HOST_WISH, args))

    # -- leadership -----------------------------------------------------------------------------

    def leases(self, scope: str) -> LeaseStore:
        return SqlLeases(self.engine, scope)

    def fenced(self, lease: Lease) -> SqlStore:
        return SqlStore(self.engine, fence=lease)

    def check_fence(self) -> None:
        fence = self.fence
        if fence is None:
            return
        self.engine.run(
            lambda tx: rules.check(read_lease(tx, self.engine, fence.scope, lock=False), fence), write=False
        )

    def close(self) -> None:
        self.engine.close()


class SqlLeases:
    """``base.LeaseStore`` for one scope, following the rules in ``lease.py``."""

    def __init__(self, engine: Engine, scope: str) -> None:
        self.engine = engine
        self.scope = scope

    def _locked(self, fn: Callable[[Tx, Lease | None, float], T]) -> T:
        """Run ``fn(tx, row, now)`` with the lease row read under the write lock."""

        def body(tx: Tx) -> T:
            ensure_lease_row(tx, self.scope)
            row = read_lease(tx, self.engine, self.scope)
            return fn(tx, row, store_now(tx, self.engine))

        return self.engine.run(body, write=True)

    def try_acquire(
        self, holder: str, ttl_s: float, *, address: str = "", replacing: str = ""
    ) -> Lease | None:
        def acquire(tx: Tx, row: Lease | None, now: float) -> Lease | None:
            new = rules.acquire(row, self.scope, holder, ttl_s, now, address=address, replacing=replacing)
            if new is not None:
                write_lease(tx, new)
            return new

        return self._locked(acquire)

    def renew(self, lease: Lease, ttl_s: float) -> Lease:
        def renew(tx: Tx, row: Lease | None, now: float) -> Lease:
            new = rules.renew(row, lease, ttl_s, now)
            write_lease(tx, new)
            return new

        return self._locked(renew)

    def release(self, lease: Lease) -> bool:
        def release(tx: Tx, row: Lease | None, now: float) -> bool:
            new = rules.release(row, lease, now)
            if new is not None:
                write_lease(tx, new)
            return new is not None

        return self._locked(release)

    def current(self) -> LeaderInfo | None:
        def current(tx: Tx) -> LeaderInfo | None:
            row = read_lease(tx, self.engine, self.scope, lock=False)
            return None if row is None else rules.info(row, store_now(tx, self.engine))

        return self.engine.run(current, write=False)

    def heartbeat(self, controller_id: str, address: str, role: str) -> None:
        now = self.engine.dialect.now
        sql = upsert("controllers", _CONTROLLER, values=f"?, ?, ?, ?, {now}, {now}", keep=("started_at",))
        self.engine.run(lambda tx: tx.execute(sql, (controller_id, self.scope, address, role)), write=True)

    def forget(self, controller_id: str) -> None:
        self.engine.run(
            lambda tx: tx.execute("DELETE FROM controllers WHERE id = ?", (controller_id,)), write=True
        )

    def controllers(self) -> list[ControllerInfo]:
        def listing(tx: Tx) -> list[ControllerInfo]:
            now = store_now(tx, self.engine)
            lease = tx.execute("SELECT holder, expires_at FROM leases WHERE scope = ?", (self.scope,))
            leader = lease[0][0] if lease and float(lease[0][1]) > now else ""
            rows = tx.execute(
                "SELECT id, address, role, started_at, last_seen FROM controllers WHERE scope = ? "
                "ORDER BY id",
                (self.scope,),
            )
            found = [
                ControllerInfo(cid, self.scope, addr, role, float(started), now - float(seen), cid == leader)
                for cid, addr, role, started, seen in rows
            ]
            return sorted(found, key=lambda c: not c.leads)

        return self.engine.run(listing, write=False)
