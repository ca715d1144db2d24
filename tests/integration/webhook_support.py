"""A webhook receiver for tests, on a loopback port: it records every POST and answers as the test
scripts it — a status code, or "never" (holds the request until the test ends)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NEVER = "never"


class WebhookServer:
    def __init__(self, default: int | str = 200) -> None:
        self.default = default
        self.script: list[int | str] = []  # answers for the next requests, then `default`
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with server._lock:
                    server.received.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    answer = server.script.pop(0) if server.script else server.default
                if answer == NEVER:
                    server._release.wait(timeout=120)
                    return
                self.send_response(int(answer))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def start(self) -> WebhookServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def webhook_server(default: int | str = 200) -> Iterator[WebhookServer]:
    server = WebhookServer(default).start()
    try:
        yield server
    finally:
        server.stop()
