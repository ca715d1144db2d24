"""The embedded default store: one SQLite file (``state.db`` under the state folder), one host.

WAL mode lets readers (the API) work while the controller writes, and lets two `vmscale up`
processes on one host share the file: every write transaction is ``BEGIN IMMEDIATE``, which takes
the database's single write lock at once, so a fenced write's lease check and the write itself
cannot interleave with another process's lease acquisition. ``synchronous=NORMAL`` keeps a
committed step durable across a process crash (a power loss may lose the last transaction, which
restart reconciliation tolerates because it trusts the provider over the store).

Lease times use the host clock (``julianday('now')``): every process sharing the file is on this
host, so they all read the same clock.

A process frozen (SIGSTOP) *inside* a write transaction keeps the write lock until it runs again:
the others then see ``StoreUnavailableError`` after ``busy_timeout_s``. Transactions here last
microseconds, so this needs a freeze at exactly that moment; PostgreSQL ends such a transaction
itself (``idle_in_transaction_session_timeout``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from vmscale.errors import StoreError
from vmscale.store.base import StoreUnavailableError
from vmscale.store.engine import Dialect, Tx
from vmscale.store.sql import SqlStore

T = TypeVar("T")

DIALECT = Dialect(
    name="sqlite",
    now="(julianday('now') - 2440587.5) * 86400.0",
    lock_row="",  # BEGIN IMMEDIATE already holds the database's only write lock
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    schema_lock="",
)


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, tuple(args)).fetchall()


class SqliteEngine:
    dialect = DIALECT

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.url = f"sqlite://{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(path), timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open state database {path}: {exc}") from exc
        self._lock = threading.Lock()  # one connection, shared by the loop and the API threads

    def run(self, fn: Callable[[Tx], T], *, write: bool) -> T:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(_SqliteTx(self._db))
                except BaseException:
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StoreUnavailableError(
                        f"state database {self.path} is locked by another process (waited "
                        f"{self._busy_timeout_s():g} s): {exc}; retry later"
                    ) from exc
                raise StoreError(f"state database {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc

    def _busy_timeout_s(self) -> float:
        with suppress(sqlite3.Error):
            return float(self._db.execute("PRAGMA busy_timeout").fetchone()[0]) / 1000
        return 0.0

    def after_import(self, tx: Tx, tables: Sequence[str]) -> None:
        """AUTOINCREMENT continues after the largest id by itself."""

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SqliteStore(SqlStore):
    """``Store`` on a SQLite file, migrated to the current schema when opened."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        engine = SqliteEngine(Path(path).expanduser().resolve(), busy_timeout_s=busy_timeout_s)
        super().__init__(engine)
        self._migrate()
        self.path = engine.path
