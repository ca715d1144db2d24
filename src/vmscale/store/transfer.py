"""Move a store's contents to another store: export to JSON lines, import into an empty target.

    {"format": "vmscale-store-export", "schema_version": 2, "source": "...", "exported_at": ...}
    {"table": "groups", "row": {"name": "web", "desired": 2, ...}}
    ...
    {"end": {"groups": 1, "instances": 4, "transitions": 31, "decisions": 12, "leases": 1}}

The export is one read transaction, so it is a consistent snapshot even while a controller runs;
the closing counts let the import notice a truncated file. Ids are kept, so the history keeps its
order. A lease is carried over *released* (no holder, same epoch): the first controller on the
target acquires it with the next epoch, so epochs never repeat across the move. The controller
registry is not carried (it is rebuilt within seconds by the controllers themselves).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from vmscale.errors import StoreError
from vmscale.store import migrations
from vmscale.store.engine import Tx
from vmscale.store.sql import SqlStore

FORMAT = "vmscale-store-export"
# table -> (columns, ordering): parents before children, history in id order
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "groups": (("name", "desired", "paused", "policy_state", "updated_at"), "name"),
    "instances": (
        (
            "name",
            "grp",
            "idx",
            "state",
            "endpoint",
            "vcpus",
            "warm",
            "launched_at",
            "ready_at",
            "details",
            "updated_at",
        ),
        "name",
    ),
    "transitions": (("id", "name", "t", "src", "dst", "reason", "epoch"), "id"),
    "decisions": (("id", "grp", "t", "actor", "record", "epoch"), "id"),
    "leases": (("scope", "holder", "epoch", "address", "acquired_at", "renewed_at", "expires_at"), "scope"),
    "host_wishes": (("host", "cordoned", "draining", "actor", "reason", "updated_at"), "host"),
}
_BOOLEANS = {  # 0/1 in SQLite, boolean in PostgreSQL
    ("groups", "paused"),
    ("instances", "warm"),
    ("host_wishes", "cordoned"),
    ("host_wishes", "draining"),
}
_HISTORY = ("groups", "instances", "transitions", "decisions")  # what makes a target "not empty"


def _normalise(table: str, row: dict[str, Any]) -> dict[str, Any]:
    for t, column in _BOOLEANS:
        if t == table and row.get(column) is not None:
            row[column] = bool(row[column])
    if table == "leases":  # carried over released: see the module docstring
        row.update(holder="", address="", expires_at=row["renewed_at"])
    return row


def export_rows(store: SqlStore) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every row of every table, as (table, row), from one consistent snapshot."""

    def snapshot(tx: Tx) -> list[tuple[str, list[tuple[Any, ...]]]]:
        return [
            (table, tx.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"))
            for table, (columns, order) in TABLES.items()
        ]

    for table, rows in store.engine.run(snapshot, write=False):
        columns = TABLES[table][0]
        for values in rows:
            yield table, _normalise(table, dict(zip(columns, values, strict=True)))


def counts(store: SqlStore) -> dict[str, int]:
    def count(tx: Tx) -> dict[str, int]:
        return {table: int(tx.execute(f"SELECT COUNT(*) FROM {table}")[0][0]) for table in TABLES}

    return store.engine.run(count, write=False)


def export_to(store: SqlStore, out: TextIO) -> dict[str, int]:
    """Write the export to ``out``; returns the row count per table."""
    header = {
        "format": FORMAT,
        "schema_version": migrations.LATEST,
        "source": store.url,
        "exported_at": time.time(),
    }
    out.write(json.dumps(header) + "\n")
    written = dict.fromkeys(TABLES, 0)
    for table, row in export_rows(store):
        out.write(json.dumps({"table": table, "row": row}) + "\n")
        written[table] += 1
    out.write(json.dumps({"end": written}) + "\n")
    return written


def read_export(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows of an export file, checked whole (header, known tables, closing counts)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        parsed = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{path} line {exc.lineno}: not JSON ({exc.msg}); is it a vmscale store export?"
        ) from exc
    if not parsed or parsed[0].get("format") != FORMAT:
        raise StoreError(f"{path} is not a vmscale store export (no '{FORMAT}' header on its first line)")
    version = int(parsed[0].get("schema_version", 0))
    if version > migrations.LATEST:
        raise StoreError(
            f"{path} was exported at schema version {version}, newer than this vmscale knows "
            f"({migrations.LATEST}): import it with the vmscale that exported it"
        )
    end = parsed[-1].get("end") if len(parsed) > 1 else None
    if not isinstance(end, dict):
        raise StoreError(f"{path} is truncated (no closing counts line): export it again")
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
    for n, item in enumerate(parsed[1:-1], start=2):
        table = item.get("table")
        if table not in rows or not isinstance(item.get("row"), dict):
            raise StoreError(f"{path} line {n}: unknown table {table!r} or no row")
        unknown = set(item["row"]) - set(TABLES[table][0])
        if unknown:
            raise StoreError(f"{path} line {n}: unknown columns of {table}: {', '.join(sorted(unknown))}")
        rows[table].append(item["row"])
    found = {table: len(r) for table, r in rows.items()}
    if any(found[t] != end.get(t, 0) for t in TABLES):
        raise StoreError(f"{path} is incomplete: the file says {end}, it holds {found}; export it again")
    return rows


def import_into(
    store: SqlStore, rows: dict[str, list[dict[str, Any]]], *, force: bool = False
) -> dict[str, int]:
    """Insert ``rows`` into ``store`` in one transaction. The target must be empty unless ``force``,
    which replaces its contents; a target with a controller leading it is always refused."""

    def load(tx: Tx) -> dict[str, int]:
        present = {t: int(tx.execute(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in _HISTORY}
        if any(present.values()) and not force:
            raise StoreError(
                f"{store.url} is not empty ({_describe(present)}): import only into an empty store, "
                "or pass --force to replace what it holds"
            )
        held = tx.execute(
            f"SELECT scope, holder FROM leases WHERE holder <> '' AND expires_at > {store.engine.dialect.now}"
        )
        if held:
            raise StoreError(
                f"{store.url} is in use: controller {held[0][1]!r} leads {held[0][0]!r}; stop the "
                "controllers that use it before importing"
            )
        for table in reversed(TABLES):
            tx.execute(f"DELETE FROM {table}")
        for table, (columns, _order) in TABLES.items():
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            for row in rows[table]:
                row = _normalise(table, dict(row))
                tx.execute(sql, tuple(row.get(c) for c in columns))
        store.engine.after_import(tx, tuple(TABLES))
        return {table: len(rows[table]) for table in TABLES}

    return store.engine.run(load, write=True)


def _describe(found: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in found.items() if n)
