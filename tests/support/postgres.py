"""A real PostgreSQL server for tests: Debian's ``postgresql`` binaries, a throw-away cluster in a
temp folder, a Unix socket there and a loopback TCP port, stopped by its pid.

    with PostgresServer.started() as pg:          # or the session fixture ``postgres_server``
        url = pg.create_database()                # postgresql://vmscale@/DB?host=SOCKDIR&port=N
        pg.restart()                              # the same socket and port: clients reconnect
        pg.stop(); pg.start()                     # an outage of any length

``initdb`` and ``postgres`` refuse to run as root, so as root they run as the ``postgres`` user
(``setpriv``, which execs: the child we start IS the postmaster, and we stop it by that pid).
The cluster trusts local socket connections and asks a password on TCP (``PASSWORD``, role
``vmscale``), so the password paths of the store can be tested too.

Fixtures (import them into a test module, or list this module in ``pytest_plugins``):
``postgres_server`` (one per session) and ``postgres_url`` (a fresh database per test).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from vmscale.ports import free_block

ROLE = "vmscale"
PASSWORD = "test-only-" + uuid.uuid4().hex[:12]  # one per test run; the server lives in a temp folder
START_TIMEOUT_S = 60.0  # initdb + first start on a busy 2-core machine
STOP_TIMEOUT_S = 30.0


def postgres_bindir() -> Path:
    """Where ``initdb``/``postgres`` live: on PATH, else Debian's /usr/lib/postgresql/VERSION/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL is not installed (no initdb on PATH or under /usr/lib/postgresql): "
            "run scripts/setup.sh --full, which installs Debian's postgresql package"
        )
    return versions[-1].parent


class PostgresServer:
    def __init__(self, base: Path | None = None) -> None:
        self.bindir = postgres_bindir()
        self.base = base or Path(tempfile.mkdtemp(prefix="vmscale-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log_path = self.base / "postgres.log"
        base_port = free_block(1, start=21000 + random.randrange(0, 4000, 7), step=7)
        if base_port is None:
            raise RuntimeError("no free loopback port for PostgreSQL")
        self.port = base_port + 1
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self._as_user = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
                "--",
            ]

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def started(cls) -> Iterator[PostgresServer]:
        server = cls()
        try:
            server.start()
            yield server
        finally:
            server.stop()
            server.remove()

    def run_step(self, *cmd: str) -> None:
        result = subprocess.run(
            [*self._as_user, *cmd], capture_output=True, text=True, timeout=START_TIMEOUT_S, cwd=self.base
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({result.returncode}): {result.stderr.strip()}")

    def _initdb(self) -> None:
        pwfile = self.base / "superuser-password"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_user:
            user = pwd.getpwnam("postgres")
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        self.run_step(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self.socket_dir.mkdir(exist_ok=True)
        if self._as_user:
            user = pwd.getpwnam("postgres")
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        """Start the server (making the cluster the first time) and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
            first = True
        else:
            first = False
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *self._as_user,
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=50",
                "-c",
                "shared_buffers=16MB",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to pytest must not hit the server before teardown
        )
        log.close()
        self._wait_ready()
        if first:
            with self.admin() as conn:
                conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' CREATEDB")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                with psycopg.connect(self.conninfo("postgres", user="postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready after {START_TIMEOUT_S:.0f} s: {self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:
        """Stop the server we started (SIGINT = PostgreSQL's fast shutdown; SIGKILL = a crash)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGQUIT)  # immediate shutdown
            proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    # -- addresses ------------------------------------------------------------------------------

    def conninfo(self, dbname: str, *, user: str = ROLE) -> str:
        """A socket URL (no password needed)."""
        return f"postgresql://{user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, dbname: str, *, user: str = ROLE) -> str:
        """A loopback TCP URL: the server asks for the password (``PASSWORD``)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    @contextlib.contextmanager
    def admin(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with psycopg.connect(self.conninfo(dbname, user="postgres"), autocommit=True, connect_timeout=5) as c:
            yield c

    def create_database(self) -> str:
        """A fresh, empty database owned by ``vmscale``; its socket URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.conninfo(name)

    def drop_database(self, url: str) -> None:
        name = url.split("/")[3].split("?")[0]
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer.started() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    postgres_server.start()  # a test that stopped it leaves it stopped; the next one needs it
    url = postgres_server.create_database()
    yield url
    postgres_server.start()
    postgres_server.drop_database(url)
