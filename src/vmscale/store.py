"""The state database: what vmscale launched, what it decided, and the policy's memory.

SQLite in WAL mode, one file (``state.db`` under the state folder by default). The controller
records each step *before* acting on it (an instance is ``pending`` in the store before the
provider is asked to launch it; ``terminating`` before it is asked to terminate), so a crash at
any point leaves enough to finish or undo the step on restart.

Every write is a short transaction; ``synchronous=NORMAL`` in WAL mode keeps a committed step
durable across a process crash (a power loss may lose the last transaction, which restart
reconciliation tolerates because it trusts the provider over the store).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmscale.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    desired INTEGER NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    policy_state TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    name TEXT PRIMARY KEY,
    grp TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    endpoint TEXT NOT NULL DEFAULT '',
    vcpus INTEGER NOT NULL DEFAULT 1,
    warm INTEGER NOT NULL DEFAULT 0,
    launched_at REAL,
    ready_at REAL,
    details TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    t REAL NOT NULL,
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    t REAL NOT NULL,
    actor TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_group ON instances (grp, state);
CREATE INDEX IF NOT EXISTS decisions_by_group ON decisions (grp, t);
"""


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


@dataclass
class GroupRow:
    name: str
    desired: int
    paused: bool
    policy_state: dict[str, Any]


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=5.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open state database {path}: {exc}") from exc
        self._lock = threading.Lock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc

    # -- groups ---------------------------------------------------------------------------------

    def load_group(self, name: str) -> GroupRow | None:
        rows = self._query("SELECT name, desired, paused, policy_state FROM groups WHERE name=?", (name,))
        if not rows:
            return None
        n, desired, paused, ps = rows[0]
        return GroupRow(n, int(desired), bool(paused), json.loads(ps))

    def save_group(
        self, name: str, desired: int, paused: bool, policy_state: dict[str, Any], t: float
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO groups (name, desired, paused, policy_state, updated_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET desired=excluded.desired, paused=excluded.paused, "
                "policy_state=excluded.policy_state, updated_at=excluded.updated_at",
                (name, desired, int(paused), json.dumps(policy_state), t),
            )

    # -- instances ------------------------------------------------------------------------------

    def put_instance(self, row: InstanceRow, t: float, *, src: str | None = None, reason: str = "") -> None:
        """Insert or update an instance; when ``src`` is given, also record the transition."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO instances (name, grp, idx, state, endpoint, vcpus, warm, launched_at, ready_at, "
                "details, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                "grp=excluded.grp, idx=excluded.idx, state=excluded.state, endpoint=excluded.endpoint, "
                "vcpus=excluded.vcpus, warm=excluded.warm, launched_at=excluded.launched_at, "
                "ready_at=excluded.ready_at, details=excluded.details, updated_at=excluded.updated_at",
                (
                    row.name,
                    row.group,
                    row.index,
                    row.state,
                    row.endpoint,
                    row.vcpus,
                    int(row.warm),
                    row.launched_at,
                    row.ready_at,
                    json.dumps(row.details),
                    t,
                ),
            )
            if src is not None:
                db.execute(
                    "INSERT INTO transitions (name, t, src, dst, reason) VALUES (?,?,?,?,?)",
                    (row.name, t, src, row.state, reason),
                )

    def instances(self, group: str, *, include_gone: bool = False) -> list[InstanceRow]:
        sql = (
            "SELECT name, grp, idx, state, endpoint, vcpus, warm, launched_at, ready_at, details "
            "FROM instances WHERE grp=?"
        )
        if not include_gone:
            sql += " AND state != 'gone'"
        rows = self._query(sql + " ORDER BY idx", (group,))
        return [
            InstanceRow(
                r[0], r[1], int(r[2]), r[3], r[4], int(r[5]), bool(r[6]), r[7], r[8], json.loads(r[9])
            )
            for r in rows
        ]

    def transitions(self, name: str) -> list[tuple[float, str, str, str]]:
        rows = self._query("SELECT t, src, dst, reason FROM transitions WHERE name=? ORDER BY id", (name,))
        return [(float(t), s, d, r) for t, s, d, r in rows]

    # -- decisions ------------------------------------------------------------------------------

    def append_decision(self, group: str, t: float, actor: str, record: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO decisions (grp, t, actor, record) VALUES (?,?,?,?)",
                (group, t, actor, json.dumps(record, default=str)),
            )

    def decisions(self, group: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT t, actor, record FROM decisions WHERE grp=? ORDER BY id DESC LIMIT ?", (group, limit)
        )
        out = []
        for t, actor, rec in reversed(rows):
            d = json.loads(rec)
            d.setdefault("t", t)
            d.setdefault("actor", actor)
            out.append(d)
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
