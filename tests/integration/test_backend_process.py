"""The fib backend as a real process on a free loopback port (both launch paths), and its clean stop.

``running_backend`` is also used by tests/integration/test_load_client.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 30.0) -> dict[str, object]:
    """Poll /healthz until it answers (or the process dies, or the deadline passes)."""
    deadline = time.monotonic() + deadline_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"backend exited with {proc.returncode}: {out[-2000:]}")
        try:
            resp = httpx.get(f"{url}/healthz", timeout=2)
            if resp.status_code == 200:
                return dict(resp.json())
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise AssertionError(f"backend at {url} not healthy within {deadline_s} s: {last}")


@contextlib.contextmanager
def running_backend(
    name: str = "web-1", workers: int = 1, fib_max_n: int = 35, module: str = "vmscale"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start ``python -m <module> [backend] ...`` on 127.0.0.1:<free port>; kill it (and its pool) after."""
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--name", name]
    args += ["--workers", str(workers), "--fib-max-n", str(fib_max_n)]
    cmd = [sys.executable, "-m", module, *(["backend"] if module == "vmscale" else []), *args]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url, proc
    finally:
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(proc.pid).children(recursive=True)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()


@pytest.mark.parametrize("module", ["vmscale", "vmscale.workload.backend"])
def test_curl_30_answers_like_the_original(module: str) -> None:
    with running_backend("web-9", workers=2, module=module) as (url, _):
        resp = httpx.get(f"{url}/30", timeout=60)
        assert resp.status_code == 200
        assert resp.json() == {"input": 30, "result": 832040, "server": "web-9"}
        assert httpx.get(f"{url}/", timeout=5).json() == {"message": "Hello from web-9"}
        health = httpx.get(f"{url}/healthz", timeout=5).json()
        assert (health["status"], health["server"], health["workers"]) == ("ok", "web-9", 2)


def test_bad_input_over_the_wire_is_4xx_json() -> None:
    with running_backend(fib_max_n=20) as (url, _):
        for path, status in (("/21", 422), ("/-1", 422), ("/x1", 400), ("/fib/1/2", 404)):
            resp = httpx.get(f"{url}{path}", timeout=10)
            assert resp.status_code == status, path
            assert set(resp.json()) == {"error", "detail"}


def test_healthz_answers_while_every_worker_is_busy() -> None:
    with running_backend(workers=1) as (url, _):
        slow: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: slow.append(httpx.get(f"{url}/33", timeout=120)))
        worker.start()
        try:
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and worker.is_alive():
                seen.append(httpx.get(f"{url}/healthz", timeout=5).json()["inflight"])
                if seen[-1] == 1:
                    break
                time.sleep(0.02)
            assert 1 in seen, f"never saw the running fib in /healthz: {seen[-5:]}"
        finally:
            worker.join(timeout=120)
        assert slow and slow[0].json()["result"] == 3524578


def test_sigterm_stops_the_server_and_its_pool() -> None:
    with running_backend(workers=2) as (_url, proc):
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2, "expected the fib worker processes"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"pool workers left behind: {alive}"


def test_healthz_stays_responsive_while_every_worker_is_saturated() -> None:
    """An overloaded instance must look slow, not dead: the fib workers run at a lower priority
    than the server, so health probes answer quickly even with a deep queue."""
    import concurrent.futures
    import statistics

    import psutil

    with running_backend("busy", workers=1) as (url, proc):
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True)]
        assert workers and all(w.nice() > psutil.Process(proc.pid).nice() for w in workers)
        with httpx.Client(timeout=60) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
            t0 = time.perf_counter()
            client.get(f"{url}/fib/30").raise_for_status()
            one_request = time.perf_counter() - t0
            heavy = [pool.submit(client.get, f"{url}/fib/30") for _ in range(4)]  # a queue of 4
            time.sleep(one_request / 2)
            probes = []
            for _ in range(5):
                t = time.perf_counter()
                assert client.get(f"{url}/healthz").json()["inflight"] >= 1
                probes.append(time.perf_counter() - t)
            for f in heavy:
                f.result().raise_for_status()
    # Same run, relative figures: a probe costs a small fraction of one heavy request.
    assert statistics.median(probes) < one_request / 3, (probes, one_request)
