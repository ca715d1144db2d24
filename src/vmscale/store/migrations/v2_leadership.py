"""Version 2: leadership. The lease per controller scope, the controller registry, the epoch
(leadership term) that made each transition and decision, and an index for an instance's history.
"""

from __future__ import annotations

DESCRIPTION = "leases, controllers, epoch on transitions and decisions"

_COMMON = (
    "ALTER TABLE transitions ADD COLUMN epoch INTEGER",
    "ALTER TABLE decisions ADD COLUMN epoch INTEGER",
    "CREATE INDEX IF NOT EXISTS transitions_by_name ON transitions (name, id)",
)

SQLITE = (
    """CREATE TABLE leases (
        scope TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        address TEXT NOT NULL,
        acquired_at REAL NOT NULL,
        renewed_at REAL NOT NULL,
        expires_at REAL NOT NULL)""",
    """CREATE TABLE controllers (
        id TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        address TEXT NOT NULL,
        role TEXT NOT NULL,
        started_at REAL NOT NULL,
        last_seen REAL NOT NULL)""",
    *_COMMON,
)

POSTGRES = (
    """CREATE TABLE leases (
        scope TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        address TEXT NOT NULL,
        acquired_at DOUBLE PRECISION NOT NULL,
        renewed_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE controllers (
        id TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        address TEXT NOT NULL,
        role TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL)""",
    *_COMMON,
)
