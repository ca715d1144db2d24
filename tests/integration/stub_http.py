"""A tiny HTTP service of the test's own, with answers the test chooses: a ``/healthz`` status
(204, 302, 500...) and request latencies (``/sleep/MS`` answers after MS milliseconds, plus a
fixed ``extra_ms`` per server). Runs on a loopback port in a thread of the test process, so a
real HAProxy can balance it and a test knows exactly which latency distribution it sent.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vmscale.lb.base import Server


class StubServer:
    def __init__(self, name: str, *, health_status: int = 200, extra_ms: int = 0) -> None:
        self.name = name
        self.health_status = health_status
        self.extra_ms = extra_ms
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: the test reads HAProxy's log
                pass

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    status = stub.health_status
                    body = b"" if status in (204, 304) else b"health\n"
                    headers = {"Location": "/elsewhere"} if 300 <= status < 400 else {}
                    return self._answer(status, body, headers)
                if self.path.startswith("/sleep/"):
                    # The workload: a known service time, not a wait for a condition.
                    time.sleep((int(self.path.rsplit("/", 1)[1]) + stub.extra_ms) / 1000.0)
                    return self._answer(200, json.dumps({"server": stub.name}).encode())
                return self._answer(404, b"not found\n")

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if status not in (204, 304):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status not in (204, 304):
                    with contextlib.suppress(ConnectionError):  # HAProxy's check reads the status only
                        self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1})

    @property
    def server(self) -> Server:
        return Server(self.name, "127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)


@contextmanager
def stub_servers(*servers: StubServer) -> Iterator[tuple[StubServer, ...]]:
    with ExitStack() as stack:
        for s in servers:
            s.start()
            stack.callback(s.stop)
        yield servers
