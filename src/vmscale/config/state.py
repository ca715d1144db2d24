"""The ``[state]`` section: where the state store lives, and the leader lease's timing.

    [state]
    url = "postgresql://vmscale@db1.example:5432/vmscale"   # several controller machines
    password_file = "/etc/vmscale/pgpassword"              # or PGPASSWORD / PGPASSFILE

Without ``url`` the store is SQLite at ``db`` (default ``<dir>/state.db``). The URL never carries
a password: a config file is copied, shown and committed too easily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, model_validator

from vmscale.config.base import Section

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class StoreUrl:
    """A parsed ``[state] url`` (or ``--url``): which backend, and where."""

    kind: Literal["sqlite", "postgres"]
    path: Path | None  # SQLite
    conninfo: str  # PostgreSQL (a libpq URL without password)


def parse_store_url(url: str) -> StoreUrl:
    """``/path``, ``sqlite:///path`` or ``postgresql://user@host:port/db``; ``ValueError`` saying what
    is wrong otherwise."""
    url = url.strip()
    if not url:
        raise ValueError("the store URL is empty: give a SQLite path, sqlite:///PATH or postgresql://...")
    if url.startswith(POSTGRES_SCHEMES):
        parts = urlsplit(url)
        if parts.password is not None or "password" in parse_qs(parts.query):
            raise ValueError(
                "the PostgreSQL URL must not contain a password: remove it and use "
                "[state] password_file, PGPASSWORD or a PGPASSFILE (~/.pgpass) instead"
            )
        return StoreUrl("postgres", None, url)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path:
            raise ValueError("sqlite:// needs a file path, e.g. sqlite:///var/lib/vmscale/state.db")
        return StoreUrl("sqlite", Path(path), "")
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(
            f"unknown store scheme {scheme!r}: use a file path, sqlite:///PATH or postgresql://..."
        )
    return StoreUrl("sqlite", Path(url), "")


class LeaseConfig(Section):
    """Leader election among the controllers that share a store (client-go's defaults)."""

    duration_s: float = Field(
        15.0, gt=0, le=3600, description="a leader that stops renewing is replaced this long after"
    )
    renew_deadline_s: float = Field(
        10.0, gt=0, description="a leader that could not renew for this long stops acting (< duration_s)"
    )
    retry_s: float = Field(
        2.0,
        gt=0,
        description="how often the leader renews and standbys try to take over (< renew_deadline_s)",
    )

    @model_validator(mode="after")
    def _order(self) -> LeaseConfig:
        if not self.renew_deadline_s < self.duration_s:
            raise ValueError(
                f"renew_deadline_s ({self.renew_deadline_s:g}) must be below duration_s "
                f"({self.duration_s:g}): a leader must stop acting before its lease can pass to another"
            )
        if not self.retry_s < self.renew_deadline_s:
            raise ValueError(
                f"retry_s ({self.retry_s:g}) must be below renew_deadline_s ({self.renew_deadline_s:g}), "
                "or a leader steps down after one missed renewal"
            )
        return self


class StateConfig(Section):
    dir: str = Field(".vmscale", description="state folder: database, logs, overlays")
    db: str = Field("", description="SQLite path; empty = <dir>/state.db")
    url: str = Field(
        "", description="store URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB; empty = db"
    )
    password_file: str = Field("", description="file whose first line is the PostgreSQL password")
    cluster: str = Field("", description="controllers with the same cluster and store elect one leader")
    connect_timeout_s: float = Field(5.0, gt=0, le=120, description="longest wait to connect to PostgreSQL")
    statement_timeout_s: float = Field(5.0, gt=0, le=120, description="longest one store statement may run")
    lease: LeaseConfig = LeaseConfig()

    @model_validator(mode="after")
    def _store(self) -> StateConfig:
        if self.url:
            if self.db:
                raise ValueError("set either state.db (a SQLite path) or state.url, not both")
            parsed = parse_store_url(self.url)
            if self.password_file and parsed.kind != "postgres":
                raise ValueError("state.password_file is for a postgresql:// url only")
        elif self.password_file:
            raise ValueError("state.password_file is for a postgresql:// url only")
        return self

    def store_url(self, state_dir: Path) -> str:
        """The store this section points at: ``url``, else ``db``, else ``<state_dir>/state.db``."""
        return self.url or self.db or str(state_dir / "state.db")
