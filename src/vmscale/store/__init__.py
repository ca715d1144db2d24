"""The state store: what vmscale launched and decided, the policy's memory, and who leads.

    store = open_store("postgresql://vmscale@db1/vmscale")       # or a path, or sqlite:///PATH
    lease = store.leases("web").try_acquire(holder, ttl_s=15)
    view = store.fenced(lease)                                    # writes refused once lease is lost
    view.put_instance(row, now, src="pending", reason="launch requested")

``base`` has the interfaces and rows, ``sqlite``/``postgres`` the backends (one SQL, ``sql``),
``migrations`` the versioned schema, ``lease`` the lease rules, ``memory`` an in-memory lease
store for unit tests, ``transfer`` export/import between stores.
"""

from __future__ import annotations

from pathlib import Path

from vmscale.config.state import StateConfig, parse_store_url
from vmscale.errors import StoreError
from vmscale.store.base import (
    ControllerInfo,
    FencedError,
    GroupRow,
    HostWishRow,
    InstanceRow,
    LeaderInfo,
    Lease,
    LeaseStore,
    SchemaTooNewError,
    Store,
    StoreUnavailableError,
)
from vmscale.store.sql import SqlStore

__all__ = [
    "ControllerInfo",
    "FencedError",
    "GroupRow",
    "HostWishRow",
    "InstanceRow",
    "LeaderInfo",
    "Lease",
    "LeaseStore",
    "SchemaTooNewError",
    "SqlStore",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "open_state_store",
    "open_store",
]


def open_store(
    url: str | Path,
    *,
    password_file: str = "",
    connect_timeout_s: float = 5.0,
    statement_timeout_s: float = 5.0,
) -> SqlStore:
    """Open (and migrate forward) the store at ``url``: a path or ``sqlite:///PATH`` is SQLite,
    ``postgresql://USER@HOST:PORT/DB`` is PostgreSQL (password from ``password_file``, ``PGPASSWORD``
    or ``PGPASSFILE``). Raises ``StoreError`` (``SchemaTooNewError`` for a newer database)."""
    try:
        target = parse_store_url(str(url))
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if target.kind == "postgres":
        try:
            from vmscale.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - the dependency is declared; this names the fix
            raise StoreError(
                f"a PostgreSQL store needs psycopg: pip install 'psycopg[binary]' ({exc})"
            ) from exc
        return PostgresStore(
            target.conninfo,
            password_file=password_file or None,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=statement_timeout_s,
        )
    from vmscale.store.sqlite import SqliteStore

    assert target.path is not None
    return SqliteStore(target.path, busy_timeout_s=statement_timeout_s)


def open_state_store(state: StateConfig, state_dir: Path) -> SqlStore:
    """The store a config's ``[state]`` section points at (``state_dir`` = the resolved ``state.dir``)."""
    return open_store(
        state.store_url(state_dir),
        password_file=state.password_file,
        connect_timeout_s=state.connect_timeout_s,
        statement_timeout_s=state.statement_timeout_s,
    )
