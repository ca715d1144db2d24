"""The versioned schema: an unversioned SQLite file from before is migrated forward with its data,
an empty database is created at the latest version, a newer one is refused untouched."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from vmscale.store import SchemaTooNewError, open_store
from vmscale.store.migrations import LATEST

# The schema vmscale wrote before versioning (src/vmscale/store.py until the store package).
LEGACY_SCHEMA = """
CREATE TABLE groups (name TEXT PRIMARY KEY, desired INTEGER NOT NULL, paused INTEGER NOT NULL DEFAULT 0,
    policy_state TEXT NOT NULL DEFAULT '{}', updated_at REAL NOT NULL);
CREATE TABLE instances (name TEXT PRIMARY KEY, grp TEXT NOT NULL, idx INTEGER NOT NULL, state TEXT NOT NULL,
    endpoint TEXT NOT NULL DEFAULT '', vcpus INTEGER NOT NULL DEFAULT 1, warm INTEGER NOT NULL DEFAULT 0,
    launched_at REAL, ready_at REAL, details TEXT NOT NULL DEFAULT '{}', updated_at REAL NOT NULL);
CREATE TABLE transitions (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, t REAL NOT NULL,
    src TEXT NOT NULL, dst TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, t REAL NOT NULL,
    actor TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX instances_by_group ON instances (grp, state);
CREATE INDEX decisions_by_group ON decisions (grp, t);
INSERT INTO groups VALUES ('web', 2, 0, '{"cpu": {"streak": 1}}', 10.0);
INSERT INTO instances VALUES ('web-1', 'web', 1, 'ready', 'http://127.0.0.1:8001', 1, 0, 1.0, 2.0, '{}', 2.0);
INSERT INTO transitions (name, t, src, dst, reason) VALUES ('web-1', 1.0, '(none)', 'pending', 'launch');
INSERT INTO transitions (name, t, src, dst, reason) VALUES ('web-1', 2.0, 'booting', 'ready', 'healthy');
INSERT INTO decisions (grp, t, actor, record) VALUES ('web', 5.0, 'autoscaler', '{"desired": 2}');
"""


def legacy_file(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(LEGACY_SCHEMA)
    db.commit()
    db.close()
    return path


def versions_sqlite(path: Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [int(r[0]) for r in db.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        db.close()


def test_an_unversioned_sqlite_file_is_migrated_forward_with_its_data(tmp_path: Path) -> None:
    path = legacy_file(tmp_path / "state.db")
    store = open_store(path)
    try:
        assert (store.upgrade.before, store.upgrade.after, store.upgrade.baseline) == (1, LATEST, True)
        assert "unversioned" in store.upgrade.describe()
        group = store.load_group("web")
        assert group is not None and (group.desired, group.policy_state) == (2, {"cpu": {"streak": 1}})
        assert [i.name for i in store.instances("web")] == ["web-1"]
        assert [t[2] for t in store.transitions("web-1")] == ["pending", "ready"]
        assert store.decisions("web") == [{"desired": 2, "t": 5.0, "actor": "autoscaler"}]
        lease = store.leases("web").try_acquire("A", 30.0)  # the new tables work
        assert lease is not None
        store.fenced(lease).append_decision("web", 6.0, "autoscaler", {"desired": 3})
        assert [d["desired"] for d in store.decisions("web")] == [2, 3]
    finally:
        store.close()
    assert versions_sqlite(path) == list(range(1, LATEST + 1))
    again = open_store(path)
    try:
        assert (again.upgrade.before, again.upgrade.after) == (LATEST, LATEST)
        assert again.upgrade.describe() == f"schema version {LATEST} (up to date)"
    finally:
        again.close()


def test_an_empty_file_starts_at_the_latest_version(tmp_path: Path) -> None:
    store = open_store(tmp_path / "new" / "state.db")
    try:
        assert (store.upgrade.before, store.upgrade.after, store.upgrade.baseline) == (0, LATEST, False)
        assert "from empty" in store.upgrade.describe()
    finally:
        store.close()


def test_a_newer_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_store(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (LATEST + 5,))
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError) as err:
        open_store(path)
    message = str(err.value)
    assert f"schema version {LATEST + 5}" in message and f"versions up to {LATEST}" in message
    assert "newer vmscale" in message and "another database" in message
    assert versions_sqlite(path)[-1] == LATEST + 5
    assert path.read_bytes() == before


def test_postgres_empty_database_migrates_and_reopens(postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        assert (store.upgrade.before, store.upgrade.after) == (0, LATEST)
        store.save_group("web", 1, False, {}, 1.0)
    finally:
        store.close()
    again = open_store(postgres_url)
    try:
        assert (again.upgrade.before, again.upgrade.after) == (LATEST, LATEST)
        assert again.load_group("web") is not None
    finally:
        again.close()


def test_postgres_controllers_starting_together_migrate_once(postgres_url: str) -> None:
    errors: list[BaseException] = []
    upgrades: list[tuple[int, int]] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait(timeout=30)
            store = open_store(postgres_url)
            upgrades.append((store.upgrade.before, store.upgrade.after))
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(upgrades) == [(0, LATEST)] + [(LATEST, LATEST)] * 3
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, LATEST + 1))


def test_a_newer_postgres_database_is_refused(postgres_url: str) -> None:
    open_store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 'from the future', 0)", (LATEST + 1,))
    with pytest.raises(SchemaTooNewError, match=f"schema version {LATEST + 1}, but this vmscale"):
        open_store(postgres_url)
