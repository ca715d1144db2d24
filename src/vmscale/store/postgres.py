"""The shared store: PostgreSQL, for controllers on more than one machine.

Access is psycopg 3 with explicit SQL (the same statements as SQLite, ``sql.py``) and a migration
table (``migrations/``); the README says why. This module is the only one that imports psycopg.

Every call is bounded: ``connect_timeout`` on connecting, ``statement_timeout`` on each statement,
and ``idle_in_transaction_session_timeout`` so that a controller frozen inside a transaction (it
holds the lease row's lock there) cannot block the others for longer than that.

One connection, shared by the controller's threads under a lock, made on first use and again after
it is lost. A lost connection is retried once at once when the failure came before ``COMMIT`` was
sent (the server then rolled the transaction back, so running it again cannot apply it twice);
otherwise, and when the server cannot be reached, the call raises ``StoreUnavailableError`` and
the next call connects again. So a PostgreSQL restart under a running controller costs the calls
made during the outage, each with a clear temporary error, and nothing else.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from vmscale.errors import StoreError
from vmscale.store.base import StoreUnavailableError
from vmscale.store.engine import Dialect, Tx
from vmscale.store.sql import SqlStore

T = TypeVar("T")

DIALECT = Dialect(
    name="postgres",
    now="CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
    lock_row=" FOR UPDATE",
    table_exists=("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?"),
    # Two controllers starting at once against an empty database: one migrates, the other waits.
    schema_lock="SELECT pg_advisory_xact_lock(7316041)",
)

_IDENTITY_TABLES = ("transitions", "decisions")


@functools.lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    """``?`` placeholders (shared with SQLite) to psycopg's ``%s``. The store's SQL has no ``%``."""
    return sql.replace("?", "%s")


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(_pyformat(sql), tuple(args))
        return cur.fetchall() if cur.description is not None else []


class PostgresEngine:
    dialect = DIALECT

    def __init__(
        self,
        url: str,
        *,
        display_url: str,
        password: str | None = None,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 5.0,
    ) -> None:
        self.url = display_url
        self._conninfo = url
        ms = int(statement_timeout_s * 1000)
        self._kwargs: dict[str, Any] = {
            "connect_timeout": max(2, round(connect_timeout_s)),  # libpq's minimum is 2 s
            "options": f"-c statement_timeout={ms} -c idle_in_transaction_session_timeout={max(ms, 1000)}",
            "application_name": "vmscale",
            "autocommit": True,  # transactions are explicit BEGIN/COMMIT below
            # A silent network partition is noticed in about 11 s instead of the kernel's hours.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
        }
        if password is not None:
            self._kwargs["password"] = password
        self.statement_timeout_s = statement_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self._conninfo, **self._kwargs)
            except psycopg.Error as exc:
                first = _first_line(exc)
                if "password" in first or "authentication" in first:
                    raise StoreError(
                        f"cannot connect to {self.url}: {first}: give the password in [state] "
                        "password_file, PGPASSWORD or a PGPASSFILE"
                    ) from exc
                if "does not exist" in first:
                    raise StoreError(f"cannot connect to {self.url}: {first}") from exc
                raise StoreUnavailableError(f"cannot connect to {self.url}: {first}; retry later") from exc
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
        self._conn = None

    def run(self, fn: Callable[[Tx], T], *, write: bool) -> T:
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                committing = False
                try:
                    conn.execute("BEGIN" if write else "BEGIN READ ONLY")
                    result = fn(_PgTx(conn))
                    committing = True
                    conn.execute("COMMIT")
                    return result
                except psycopg.Error as exc:
                    lost = conn.broken or conn.closed
                    if lost:
                        self._drop()
                        if not committing and attempt == 1:
                            continue  # nothing was committed: run it once more on a new connection
                    else:
                        with suppress(psycopg.Error):
                            conn.execute("ROLLBACK")
                    raise self._translate(exc, lost=lost, committing=committing) from exc
                except BaseException:
                    if not (conn.broken or conn.closed):
                        with suppress(psycopg.Error):
                            conn.execute("ROLLBACK")
                    raise
            raise AssertionError("unreachable: the second attempt returns or raises")

    def _translate(self, exc: psycopg.Error, *, lost: bool, committing: bool) -> StoreError:
        first = _first_line(exc)
        if lost:
            outcome = "the write may or may not have been applied" if committing else "nothing was written"
            return StoreUnavailableError(
                f"lost the connection to {self.url} ({first}); {outcome}; retry later"
            )
        if isinstance(exc, pg_errors.QueryCanceled):
            return StoreUnavailableError(
                f"{self.url}: a statement took longer than {self.statement_timeout_s:g} s and was cancelled; "
                "retry later"
            )
        if isinstance(
            exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected | psycopg.OperationalError
        ):
            return StoreUnavailableError(f"{self.url}: {first}; retry later")
        return StoreError(f"{self.url}: {first}")

    def after_import(self, tx: Tx, tables: Sequence[str]) -> None:
        """Rows imported with explicit ids: move the identity sequences past them."""
        for table in _IDENTITY_TABLES:
            if table in tables:
                tx.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                )

    def close(self) -> None:
        with self._lock:
            self._drop()


class PostgresStore(SqlStore):
    """``Store`` on a PostgreSQL database, migrated to the current schema when opened."""

    def __init__(
        self,
        url: str,
        *,
        display_url: str | None = None,
        password_file: str | Path | None = None,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 5.0,
    ) -> None:
        engine = PostgresEngine(
            url,
            display_url=display_url or url,
            password=read_password(password_file) if password_file else None,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=statement_timeout_s,
        )
        super().__init__(engine)
        self._migrate()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_password(path: str | Path) -> str:
    """The password in ``path`` (its first line), for ``[state] password_file``."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot read the PostgreSQL password file {path}: {exc.strerror or exc}") from exc
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise StoreError(f"the PostgreSQL password file {path} is empty: put the password on its first line")
    return lines[0]
