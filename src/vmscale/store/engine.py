"""What the shared SQL (``sql.py``) and the migrations need from a database backend.

A backend (``sqlite.py``, ``postgres.py``) is an ``Engine``: it runs a function inside one
transaction and translates its driver's errors into ``StoreError``s. Everything else (the
queries, the lease rules, fencing) is written once over this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """The few places where SQLite and PostgreSQL SQL differ."""

    name: str  # "sqlite" or "postgres": also the attribute of a migration holding its statements
    now: str  # an expression for the store's clock, in epoch seconds
    lock_row: str  # appended to a SELECT that must lock the row it reads until commit
    table_exists: str  # a query with one ``?``: a row when the table exists
    schema_lock: str  # a statement that serialises concurrent migrations ("" when the write lock does)


class Tx(Protocol):
    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders) and return its rows (empty for a write)."""
        ...


class Engine(Protocol):
    dialect: Dialect
    url: str  # safe to print

    def run(self, fn: Callable[[Tx], T], *, write: bool) -> T:
        """Run ``fn`` in one transaction and commit it.

        ``write`` transactions are serialised with every other writer (SQLite ``BEGIN IMMEDIATE``;
        in PostgreSQL fenced writes serialise on the lease row instead). ``fn`` may run twice when a
        backend retries after a lost connection, so it must have no effect outside the transaction.
        Errors arrive as ``StoreError`` (``StoreUnavailableError`` when they are temporary).
        """
        ...

    def after_import(self, tx: Tx, tables: Sequence[str]) -> None:
        """Fix-ups after rows were inserted with explicit ids (PostgreSQL's identity sequences)."""
        ...

    def close(self) -> None: ...
