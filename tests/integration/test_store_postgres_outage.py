"""PostgreSQL going away under a running store: calls during the outage fail fast with a clear
temporary error, the store object survives, and the first call after the server is back works.
Also: every call is bounded, and the password comes from a file or the environment."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres import PASSWORD, PostgresServer
from vmscale.errors import StoreError
from vmscale.store import InstanceRow, StoreUnavailableError, open_store

# Timeouts of the store under test: short, so the bounded-call tests end quickly.
TIMEOUT_S = 2.0


def test_a_write_during_a_restart_fails_clearly_and_the_next_one_works(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = open_store(postgres_url, connect_timeout_s=TIMEOUT_S, statement_timeout_s=TIMEOUT_S)
    try:
        store.append_decision("web", 1.0, "autoscaler", {"desired": 1})
        postgres_server.stop()
        for write in (
            lambda: store.append_decision("web", 2.0, "autoscaler", {"desired": 2}),
            lambda: store.put_instance(InstanceRow("web-1", "web", 1, "pending"), 2.0, src="(none)"),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="retry later") as err:
                write()
            assert time.monotonic() - started < 3 * TIMEOUT_S
            assert isinstance(err.value, StoreError)
        with pytest.raises(StoreUnavailableError):
            store.decisions("web")
        postgres_server.start()
        store.append_decision("web", 3.0, "autoscaler", {"desired": 3})
        assert [d["desired"] for d in store.decisions("web")] == [1, 3]
    finally:
        store.close()


def test_a_restart_between_two_calls_costs_nothing(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The connection died while idle: the next call notices before anything was sent to commit,
    so it reconnects and runs once more, and succeeds."""
    store = open_store(postgres_url, connect_timeout_s=TIMEOUT_S, statement_timeout_s=TIMEOUT_S)
    try:
        lease = store.leases("web").try_acquire("A", 60.0)
        assert lease is not None
        postgres_server.restart()
        store.fenced(lease).append_decision("web", 1.0, "autoscaler", {"desired": 2})
        assert store.leases("web").renew(lease, 60.0).epoch == lease.epoch  # the lease survived the restart
        assert [d["desired"] for d in store.decisions("web")] == [2]
    finally:
        store.close()


def test_a_statement_blocked_by_a_lock_is_cancelled_at_the_timeout(postgres_url: str) -> None:
    store = open_store(postgres_url, connect_timeout_s=TIMEOUT_S, statement_timeout_s=1.0)
    try:
        lease = store.leases("web").try_acquire("A", 60.0)
        assert lease is not None
        with psycopg.connect(postgres_url) as blocker:  # another session holds the lease row
            blocker.execute("SELECT * FROM leases WHERE scope = 'web' FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="longer than 1 s and was cancelled"):
                store.fenced(lease).append_decision("web", 1.0, "x", {})
            assert time.monotonic() - started < 10
        store.fenced(lease).append_decision("web", 2.0, "x", {})  # the lock is gone: works again
    finally:
        store.close()


def test_no_server_at_start_is_a_temporary_error(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="cannot connect to"):
        open_store(f"postgresql://vmscale@/vmscale?host={tmp_path}&port=5999", connect_timeout_s=TIMEOUT_S)
    assert time.monotonic() - started < 10


def test_the_password_comes_from_a_file(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    dbname = postgres_url.split("/")[3].split("?")[0]
    url = postgres_server.tcp_url(dbname)
    with pytest.raises(StoreError, match="password") as err:
        open_store(url, connect_timeout_s=TIMEOUT_S)
    assert not isinstance(err.value, StoreUnavailableError)  # wrong credentials are not temporary
    pwfile = tmp_path / "pgpassword"
    pwfile.write_text(PASSWORD + "\n")
    store = open_store(url, password_file=str(pwfile), connect_timeout_s=TIMEOUT_S)
    store.save_group("web", 1, False, {}, 1.0)
    store.close()
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(StoreError, match="is empty: put the password on its first line"):
        open_store(url, password_file=str(empty))
    with pytest.raises(StoreError, match="cannot read the PostgreSQL password file"):
        open_store(url, password_file=str(tmp_path / "missing"))


def test_the_password_comes_from_a_pgpassfile(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbname = postgres_url.split("/")[3].split("?")[0]
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres_server.port}:{dbname}:vmscale:{PASSWORD}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    store = open_store(postgres_server.tcp_url(dbname), connect_timeout_s=TIMEOUT_S)
    try:
        assert store.load_group("web") is None
        assert PASSWORD not in store.url
    finally:
        store.close()


def test_a_password_in_the_url_is_refused() -> None:
    with pytest.raises(StoreError, match="must not contain a password"):
        open_store("postgresql://vmscale:secret@127.0.0.1:1/vmscale")
