"""systemd's notify protocol over a real Unix datagram socket, and JSON logs that keep tracebacks."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmscale import sdnotify
from vmscale.cli.logsetup import VmscaleJsonFormatter, setup_logging


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def test_ready_and_status_arrive_as_one_datagram(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    assert sdnotify.notify("READY=1", "STATUS=serving", env={"NOTIFY_SOCKET": path})
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=serving"


def test_abstract_socket_names_start_with_at() -> None:
    name = f"vmscale-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert sdnotify.notify("STOPPING=1", env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"


def test_without_systemd_nothing_is_sent() -> None:
    assert not sdnotify.notify("READY=1", env={})


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert "could not notify systemd" in caplog.text


def _json_lines(emit: object) -> list[dict[str, object]]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(VmscaleJsonFormatter())
    logger = logging.getLogger("vmscale.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)  # type: ignore[operator]
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_logs_keep_the_traceback() -> None:
    def emit(logger: logging.Logger) -> None:
        try:
            {}["missing"]
        except KeyError:
            logger.exception("tick failed")

    (rec,) = _json_lines(emit)
    assert rec["level"] == "error" and rec["msg"] == "tick failed" and rec["logger"] == "vmscale.test.json"
    assert isinstance(rec["t"], float)
    trace = str(rec["exc_info"])
    assert trace.startswith("Traceback (most recent call last):") and "KeyError: 'missing'" in trace


def test_json_logs_keep_stack_info_and_extra_fields() -> None:
    (rec,) = _json_lines(lambda logger: logger.warning("slow", stack_info=True, extra={"group": "web"}))
    assert str(rec["stack_info"]).startswith("Stack (most recent call last):")
    assert rec["group"] == "web"


def test_setup_logging_json_writes_json_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("vmscale.x").exception("it broke")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ValueError: bad" in json.loads(line)["exc_info"]
    setup_logging("text")


def test_httpx_request_lines_stay_out_of_the_log_unless_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    """httpx logs every request at INFO: with a health probe per instance per tick they buried
    vmscale's own lines (seen in `vmscale up` logs)."""
    setup_logging("text")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:1/healthz")
    logging.getLogger("httpx").warning("a warning still shows")
    logging.getLogger("vmscale.x").info("vmscale's own line")
    err = capsys.readouterr().err
    assert "HTTP Request" not in err and "a warning still shows" in err and "vmscale's own line" in err
    setup_logging("text", verbose=True)
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:1/healthz")
    assert "HTTP Request" in capsys.readouterr().err
    setup_logging("text")
