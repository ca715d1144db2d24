"""A real Prometheus server and a metrics endpoint the caller controls, both on loopback, for the
integration tests and the query benchmark.

    with GaugeExporter() as exp, PrometheusServer(tmp, file_sd=[sd_path]) as prom:
        exp.set("test_queue", 7)                  # what the next scrape of exp.url sees
        httpx.get(prom.url + "/api/v1/query", params={"query": "test_queue"})

``PrometheusServer`` runs Debian's ``prometheus`` binary (installed by ``scripts/setup.sh --full``)
with a generated config, a storage folder of its own and a free loopback port, waits for
``/-/ready`` with a deadline, and is stopped by its process id (SIGTERM, then SIGKILL). Nothing is
left running and nothing outside 127.0.0.1 is contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from vmscale.ports import free_port


class PrometheusServer:
    def __init__(
        self,
        workdir: Path,
        *,
        file_sd: Sequence[Path] = (),
        scrape_interval_s: float = 1.0,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.file_sd = list(file_sd)
        self.scrape_interval_s = scrape_interval_s
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        every = f"{self.scrape_interval_s:g}s"
        return {
            "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
            "scrape_configs": [
                {
                    "job_name": "vmscale",
                    "file_sd_configs": [{"files": [str(p) for p in self.file_sd], "refresh_interval": "5s"}],
                }
            ],
        }

    def start(self, timeout_s: float = 60.0) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: run scripts/setup.sh --full (Debian's 'prometheus')")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.workdir / "prometheus.yml"
        cfg_path.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={cfg_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/-/ready", timeout=2.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready within {timeout_s:g} s: {self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def active_targets(self) -> list[dict[str, Any]]:
        """``/api/v1/targets``: what Prometheus discovered and scrapes, with labels and health."""
        resp = httpx.get(
            self.url + "/api/v1/targets", params={"state": "active"}, timeout=5.0, trust_env=False
        )
        resp.raise_for_status()
        return list(resp.json()["data"]["activeTargets"])

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GaugeExporter:
    """A loopback HTTP server answering ``GET /metrics`` with gauges the caller sets."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {}
        self._lock = threading.Lock()
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.address}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="gauge-exporter", daemon=True)

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._values[name] = value

    def exposition(self) -> str:
        with self._lock:
            self.scrapes += 1
            return "".join(f"# TYPE {n} gauge\n{n} {v!r}\n" for n, v in sorted(self._values.items()))

    def start(self) -> GaugeExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GaugeExporter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
