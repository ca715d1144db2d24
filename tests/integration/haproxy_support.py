"""Helpers for the HAProxy integration tests and benchmarks: real backend processes, a real
HAProxy, an open-loop httpx load generator and a wrk runner. All traffic stays on 127.0.0.1,
every loop is bounded in count and time, and every process started here is killed by its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.wait import wait_until
from vmscale.config.haproxy import HaproxyConfig
from vmscale.config.health import HealthConfig
from vmscale.lb.base import Server
from vmscale.lb.haproxy import HaproxyLoadBalancer

BACKEND_CMD = [sys.executable, "-m", "vmscale", "backend"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Backend:
    """One real fib backend process on a free loopback port."""

    name: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> Server:
        return Server(self.name, "127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> Backend:
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--name", self.name, "--workers", "1"]
        self.proc = subprocess.Popen(
            [*BACKEND_CMD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"backend {self.name} exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, f"backend {self.name} /healthz", timeout_s)
        return self

    def kill(self, sig: int = 9) -> None:
        """Kill the backend's whole session (uvicorn and its fib workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()


@contextlib.contextmanager
def backends(*names: str) -> Iterator[list[Backend]]:
    started: list[Backend] = []
    try:
        for name in names:
            started.append(Backend(name).start())
        yield started
    finally:
        for b in started:
            b.kill()


@contextlib.contextmanager
def short_state_dir(prefix: str) -> Iterator[Path]:
    """A state folder with a short path: HAProxy's runtime socket lives in it, and Unix socket paths
    max out at 107 bytes (pytest's tmp_path is too long)."""
    if shutil.which("haproxy") is None:
        raise AssertionError("haproxy is not installed: apt-get install haproxy")
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fast_config(**overrides: object) -> HaproxyConfig:
    values: dict[str, object] = {
        "bind": f"127.0.0.1:{free_port()}",
        "stats_bind": f"127.0.0.1:{free_port()}",
        "check_inter_s": 0.5,
        "check_timeout_s": 0.5,
        "check_rise": 1,
        "check_fall": 2,
    }
    values.update(overrides)
    return HaproxyConfig.model_validate(values)


@contextlib.contextmanager
def running_haproxy(
    config: HaproxyConfig | None = None, group: str = "web", health: HealthConfig | None = None
) -> Iterator[HaproxyLoadBalancer]:
    """A started HAProxy in a short temporary folder (Unix socket paths are limited to 107 bytes)."""
    if shutil.which("haproxy") is None:
        raise AssertionError("haproxy is not installed: apt-get install haproxy")
    state = Path(tempfile.mkdtemp(prefix="vmscale-hap-"))
    lb = HaproxyLoadBalancer(config or fast_config(), group, state, health)
    try:
        lb.start()
        yield lb
    finally:
        lb.stop()
        shutil.rmtree(state, ignore_errors=True)


# ---- open-loop load ------------------------------------------------------------------------------


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    servers: dict[str, int] = field(default_factory=dict)
    # (t_send monotonic, ok) per request, for looking at when failures happened
    timeline: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)


class OpenLoopLoad:
    """Sends GET ``url`` at a fixed rate whatever the responses do (open loop), for at most
    ``duration_s`` or until ``stop()``; bounded to ``rate_rps * duration_s`` requests."""

    def __init__(self, url: str, rate_rps: float, duration_s: float, timeout_s: float = 10.0) -> None:
        self.url, self.rate_rps, self.duration_s, self.timeout_s = url, rate_rps, duration_s, timeout_s
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> OpenLoopLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join(self.timeout_s + 5)
        return self.result

    async def _one(self, client: httpx.AsyncClient, t: float) -> None:
        res = self.result
        good = False
        try:
            resp = await client.get(self.url)
            if resp.status_code == 200:
                good = True
                server = str(resp.json().get("server"))
                res.servers[server] = res.servers.get(server, 0) + 1
            else:
                res.failures.append(f"HTTP {resp.status_code}: {resp.text[:100]}")
        except httpx.HTTPError as exc:
            res.failures.append(f"{type(exc).__name__}: {exc}")
        res.ok += good
        res.timeline.append((t, good))

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            start = time.monotonic()
            tasks: set[asyncio.Task[None]] = set()
            total = int(self.rate_rps * self.duration_s)
            for i in range(total):
                due = start + i / self.rate_rps
                while (delay := due - time.monotonic()) > 0 and not self._stop.is_set():
                    await asyncio.sleep(min(delay, 0.05))
                if self._stop.is_set():
                    break
                self.result.sent += 1
                task = asyncio.create_task(self._one(client, time.monotonic()))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=self.timeout_s + 1)


# ---- wrk -----------------------------------------------------------------------------------------

_WRK_DELAY_LUA = "function delay() return {ms} end\n"


@dataclass
class WrkResult:
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]
    requests_per_s: float
    text: str

    @property
    def failed(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(text: str) -> WrkResult:
    """Read wrk's summary: "N requests in ...", "Non-2xx or 3xx responses: N",
    "Socket errors: connect A, read B, write C, timeout D", "Requests/sec: X"."""
    done = re.search(r"(\d+) requests in", text)
    if not done:
        raise AssertionError(f"wrk printed no summary:\n{text}")
    non = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    sock = re.search(r"Socket errors:\s*connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
    errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    return WrkResult(
        int(done.group(1)), int(non.group(1)) if non else 0, errors, float(rps.group(1)) if rps else 0.0, text
    )


class Wrk:
    """wrk run in the background (an independent client). ``delay_ms`` paces each connection
    with wrk's Lua ``delay()`` hook so it does not starve the backends on a small machine."""

    def __init__(self, url: str, duration_s: int, connections: int = 4, delay_ms: int | None = None) -> None:
        if shutil.which("wrk") is None:
            raise AssertionError("wrk is not installed: apt-get install wrk")
        self._script: Path | None = None
        args = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s"]
        if delay_ms:
            fd, path = tempfile.mkstemp(suffix=".lua", prefix="vmscale-wrk-")
            with open(fd, "w") as fh:
                fh.write(_WRK_DELAY_LUA.format(ms=delay_ms))
            self._script = Path(path)
            args += ["-s", path]
        self.duration_s = duration_s
        self.proc = subprocess.Popen(
            [*args, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def result(self) -> WrkResult:
        try:
            out, _ = self.proc.communicate(timeout=self.duration_s + 30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self._script:
                self._script.unlink(missing_ok=True)
        return parse_wrk(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        if self._script:
            self._script.unlink(missing_ok=True)
