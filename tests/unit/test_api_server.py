"""serve_in_thread: starts on a free port, reports a taken port clearly, stops cleanly."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.fakes_control import make_api
from vmscale.api.app import serve_in_thread


def test_serves_on_a_free_port_and_stops() -> None:
    app, _ = make_api()
    handle = serve_in_thread(app, "127.0.0.1", 0)
    port = handle.port
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
    handle.stop()
    handle.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_a_taken_port_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        app, _ = make_api()
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            serve_in_thread(app, "127.0.0.1", port)
