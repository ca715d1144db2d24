"""A client that reconnects to the event stream with ``Last-Event-ID`` gets exactly what it
missed, replayed from the recent-events buffer; when that is gone (too old, or an id from before
a restart) it is told so with a ``reset`` event saying what to do. Real uvicorn on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.fakes_control import READ_TOKEN, FakeControlPlane, make_api
from tests.unit.test_api_sse import messages, next_event
from vmscale.api.app import ServerHandle, serve_in_thread
from vmscale.api.sse import parse_last_event_id
from vmscale.cli import app as cli_app
from vmscale.events import EventBus

AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


def serve(control: FakeControlPlane, port: int = 0) -> ServerHandle:
    app, _ = make_api(control, sse_ping_s=0.3)
    return serve_in_thread(app, "127.0.0.1", port)


@pytest.fixture()
def served() -> Iterator[tuple[str, FakeControlPlane]]:
    control = FakeControlPlane()
    control.add_instance()
    handle = serve(control)
    try:
        yield f"http://127.0.0.1:{handle.port}", control
    finally:
        handle.stop()


def read(
    base: str, n: int, headers: dict[str, str] | None = None, path: str = "/v1/events"
) -> list[dict[str, Any]]:
    """The first ``n`` events of one connection, as (id, event, data) dicts."""
    out = []
    with (
        httpx.Client(base_url=base) as client,
        client.stream("GET", path, headers={**AUTH, **(headers or {})}, timeout=10) as resp,
    ):
        assert resp.status_code == 200
        it = messages(resp.iter_lines())
        for _ in range(n):
            m = next_event(it)
            out.append({"id": int(m["id"]), "event": m["event"], "data": json.loads(m["data"])})
    return out


def test_a_fresh_stream_starts_as_of_the_newest_event(served) -> None:
    base, control = served
    control.tick()
    control.tick()
    first = read(base, 1)[0]
    assert first["event"] == "endpoints" and first["id"] == control.events.latest_seq > 0


def test_a_reconnect_gets_exactly_what_it_missed(served) -> None:
    base, control = served
    seen = read(base, 1)[0]["id"]  # connected, then the connection dropped
    control.scale_up("busy")  # decision, instance, instance, endpoints: missed
    control.tick(latency_p95_s=0.2)
    missed = list(range(seen + 1, control.events.latest_seq + 1))
    got = read(base, len(missed), {"Last-Event-ID": str(seen)})
    assert [e["id"] for e in got] == missed
    assert [e["event"] for e in got] == ["decision", "instance", "instance", "endpoints", "tick"]
    assert got[0]["data"]["data"]["reason"] == "busy"


def test_replay_then_live_without_a_gap_or_a_repeat(served) -> None:
    base, control = served
    seen = read(base, 1)[0]["id"]
    control.tick()
    with (
        httpx.Client(base_url=base) as client,
        client.stream("GET", "/v1/events", headers={**AUTH, "Last-Event-ID": str(seen)}, timeout=10) as resp,
    ):
        it = messages(resp.iter_lines())
        ids = [int(next_event(it)["id"])]  # the replayed tick
        control.tick()  # live
        control.tick()
        ids += [int(next_event(it)["id"]) for _ in range(2)]
    assert ids == [seen + 1, seen + 2, seen + 3]


def test_replay_honours_the_type_filter(served) -> None:
    base, control = served
    seen = control.events.latest_seq
    control.tick()
    control.scale_up("busy")
    got = read(base, 1, {"Last-Event-ID": str(seen)}, path="/v1/events?types=decision")
    assert [e["event"] for e in got] == ["decision"]


def test_the_query_parameter_resumes_too(served) -> None:
    base, control = served
    seen = control.events.latest_seq
    control.tick()
    got = read(base, 1, path=f"/v1/events?last_event_id={seen}")
    assert got[0]["event"] == "tick" and got[0]["id"] == seen + 1


def test_a_gap_older_than_the_buffer_is_told_with_what_to_do() -> None:
    control = FakeControlPlane()
    control.events = EventBus(keep=5, clock=control.clock.now)  # a small buffer
    control.add_instance()
    handle = serve(control)
    try:
        base = f"http://127.0.0.1:{handle.port}"
        for _ in range(10):
            control.tick()
        got = read(base, 2, {"Last-Event-ID": "2"})
    finally:
        handle.stop()
    reset, endpoints = got
    assert reset["event"] == "reset" and reset["id"] == control.events.latest_seq
    data = reset["data"]["data"]
    assert data["last_event_id"] == 2 and data["resume_from"] == control.events.latest_seq
    assert "no longer kept" in data["reason"] and "GET /v1/group" in data["action"]
    assert endpoints["event"] == "endpoints", "then the stream as a fresh client has it"


@pytest.mark.parametrize(
    ("last_id", "why"),
    [
        pytest.param("999", "not from this controller's stream", id="from-before-a-restart"),
        pytest.param("abc", "not from this controller's stream", id="not-ours"),
    ],
)
def test_an_id_this_stream_never_sent_is_a_reset(served, last_id: str, why: str) -> None:
    base, control = served
    control.tick()
    got = read(base, 1, {"Last-Event-ID": last_id})[0]
    assert got["event"] == "reset" and why in got["data"]["data"]["reason"]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(None, None), ("", None), (" 12 ", 12), ("0", 0), ("-3", -1), ("1e3", -1), ("9" * 40, -1)],
)
def test_parse_last_event_id(value: str | None, parsed: int | None) -> None:
    assert parse_last_event_id(value) == parsed


def test_cli_logs_follow_resumes_after_the_stream_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vmscale logs --follow` sends Last-Event-ID when it reconnects, so decisions made while the
    API was away are printed, none twice."""
    control = FakeControlPlane()
    control.add_instance()
    handle = serve(control)
    port = handle.port
    monkeypatch.setenv("VMSCALE_TOKEN", READ_TOKEN)
    result: dict[str, Any] = {}

    def follow() -> None:
        result["run"] = CliRunner().invoke(
            cli_app,
            [
                "logs",
                "--follow",
                "--json",
                "--types",
                "decision",
                "--limit",
                "1",
                "--max-events",  # live + the two made while away
                "3",
                "--api",
                f"http://127.0.0.1:{port}",
            ],
        )

    control.scale_up("before")  # printed from /v1/decisions first
    thread = threading.Thread(target=follow, daemon=True)  # a hung CLI must not hang the suite
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while handle._hub is not None and handle._hub.client_count == 0:  # the CLI is following
            assert time.monotonic() < deadline, "the CLI did not connect"
            time.sleep(0.02)
        control.scale_up("live")  # delivered before the stream ends: events are sent in order
        handle.stop()  # the API goes away (a restart, a network cut)...
        control.scale_up("while away 1")  # ...and decisions happen meanwhile
        control.scale_up("while away 2")
        handle = serve(control, port)  # back on the same address
        thread.join(60)
    finally:
        handle.stop()
    assert not thread.is_alive(), "the CLI did not stop after --max-events"
    run = result["run"]
    assert run.exit_code == 0, run.output
    reasons = [json.loads(line)["data"]["reason"] for line in run.output.splitlines() if line.startswith("{")]
    assert reasons == ["before", "live", "while away 1", "while away 2"], run.output
