"""The versioned schema: each version's statements, and the runner that brings a database up to date.

``schema_version`` has one row per applied version. At start a store is migrated forward in one
transaction (PostgreSQL and SQLite both have transactional DDL, so a failed step leaves the
database as it was); a database with a version above ``LATEST`` was written by a newer vmscale and
is refused, untouched, with ``SchemaTooNewError``.

A SQLite file from before versioning has the version-1 tables but no ``schema_version`` table: it
is recorded as version 1 (a baseline) and migrated forward from there.

To change the schema: add ``vN_what.py`` with ``DESCRIPTION``, ``SQLITE`` and ``POSTGRES`` (tuples of
statements) and append it to ``_VERSIONS``. Never edit a released version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType

from vmscale import __version__
from vmscale.store.base import SchemaTooNewError
from vmscale.store.engine import Engine, Tx
from vmscale.store.migrations import v1_initial, v2_leadership, v3_host_wishes

_VERSIONS: tuple[ModuleType, ...] = (v1_initial, v2_leadership, v3_host_wishes)
LATEST = len(_VERSIONS)

_CREATE_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL)"""


@dataclass(frozen=True)
class Upgrade:
    before: int  # 0 = an empty database
    after: int
    baseline: bool  # an unversioned (pre-versioning) database was recognised as version 1

    def describe(self) -> str:
        if self.before == self.after:
            return f"schema version {self.after} (up to date)"
        start = "empty" if self.before == 0 else f"version {self.before}"
        note = " (an unversioned database, recognised as version 1)" if self.baseline else ""
        return f"schema migrated from {start}{note} to version {self.after}"


def current_version(tx: Tx, engine: Engine) -> tuple[int, bool]:
    """(version, baseline): the database's schema version, 0 when empty."""
    if tx.execute(engine.dialect.table_exists, ("schema_version",)):
        rows = tx.execute("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0), False
    if tx.execute(engine.dialect.table_exists, ("groups",)):
        return 1, True
    return 0, False


def upgrade(engine: Engine) -> Upgrade:
    """Bring the database to ``LATEST``, or refuse one newer than that. Safe to run concurrently."""

    def step(tx: Tx) -> Upgrade:
        if engine.dialect.schema_lock:
            tx.execute(engine.dialect.schema_lock)
        before, baseline = current_version(tx, engine)
        if before > LATEST:
            raise SchemaTooNewError(
                f"state database {engine.url} has schema version {before}, but this vmscale "
                f"({__version__}) knows versions up to {LATEST}: run the newer vmscale that wrote it, "
                "or point [state] url at another database"
            )
        if before < LATEST:
            tx.execute(_CREATE_VERSION_TABLE)
            if baseline:
                tx.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (1, "baseline: found an unversioned database", time.time()),
                )
            for version, module in enumerate(_VERSIONS, start=1):
                if version <= before:
                    continue
                for statement in getattr(module, engine.dialect.name.upper()):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (version, module.DESCRIPTION, time.time()),
                )
        return Upgrade(before, LATEST, baseline)

    return engine.run(step, write=True)
