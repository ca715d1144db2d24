"""The event stream over a real uvicorn on loopback: endpoints first, then every event, live."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes_control import READ_TOKEN, FakeControlPlane, make_api
from vmscale.api.app import ServerHandle, serve_in_thread
from vmscale.api.sse import EventHub
from vmscale.events import Event

AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture()
def server() -> Iterator[tuple[str, FakeControlPlane, ServerHandle]]:
    app, control = make_api(sse_ping_s=0.3)
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{handle.port}", control, handle
    finally:
        handle.stop()


def messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Parse SSE lines into messages; comment-only blocks come back as {"comment": ...}."""
    msg: dict[str, str] = {}
    for line in lines:
        if line == "":
            if msg:
                yield msg
            msg = {}
        elif line.startswith(":"):
            msg["comment"] = line[1:].strip()
        else:
            key, _, value = line.partition(":")
            msg[key] = value.removeprefix(" ")


def next_event(it: Iterator[dict[str, str]], deadline_s: float = 10.0) -> dict[str, str]:
    end = time.monotonic() + deadline_s
    for msg in it:
        if "event" in msg:
            return msg
        if time.monotonic() > end:
            break
    raise AssertionError("no event before the deadline")


def server_hub(control: FakeControlPlane) -> EventHub:
    hubs = [getattr(fn, "__self__", None) for fn in control.events._s.listeners]
    return next(h for h in hubs if isinstance(h, EventHub))


def open_stream(client: httpx.Client, path: str = "/v1/events"):
    return client.stream("GET", path, headers=AUTH, timeout=httpx.Timeout(10.0))


def test_first_endpoints_then_published_events(server) -> None:
    base, control, _ = server
    with httpx.Client(base_url=base) as client, open_stream(client) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        it = messages(resp.iter_lines())
        first = next_event(it)
        assert first["event"] == "endpoints"
        data = json.loads(first["data"])
        assert data["type"] == "endpoints"
        assert data["data"] == {"endpoints": [{"name": "web-1", "url": "http://127.0.0.1:18101"}]}

        control.scale_up()  # decision, instance booting, instance ready, endpoints
        got = [next_event(it) for _ in range(4)]
        assert [m["event"] for m in got] == ["decision", "instance", "instance", "endpoints"]
        for m in got:
            ev = json.loads(m["data"])
            assert set(ev) == {"seq", "t", "type", "data"} and m["id"] == str(ev["seq"])
        assert [e["url"] for e in json.loads(got[3]["data"])["data"]["endpoints"]] == [
            "http://127.0.0.1:18101",
            "http://127.0.0.1:18102",
        ]


def test_types_filter(server) -> None:
    base, control, _ = server
    with httpx.Client(base_url=base) as client, open_stream(client, "/v1/events?types=decision") as resp:
        it = messages(resp.iter_lines())
        assert next(it) == {"comment": "connected"}  # subscribed: nothing published from now on is missed
        control.tick()
        control.scale_up("busy")
        ev = next_event(it)
        assert ev["event"] == "decision" and json.loads(ev["data"])["data"]["reason"] == "busy"


def test_keepalive_pings_while_idle(server) -> None:
    base, _, _ = server
    with httpx.Client(base_url=base) as client, open_stream(client) as resp:
        it = messages(resp.iter_lines())
        next_event(it)
        assert next(it) == {"comment": "ping"}


def test_non_finite_numbers_are_valid_json(server) -> None:
    base, control, _ = server
    with httpx.Client(base_url=base) as client, open_stream(client, "/v1/events?types=tick") as resp:
        it = messages(resp.iter_lines())
        assert next(it) == {"comment": "connected"}
        control.tick(latency_p95_s=float("nan"))
        assert json.loads(next_event(it)["data"])["data"]["latency_p95_s"] is None


def test_stop_ends_open_streams_promptly(server) -> None:
    base, _control, handle = server
    with httpx.Client(base_url=base) as client, open_stream(client) as resp:
        it = messages(resp.iter_lines())
        next_event(it)
        handle.stop()
        assert not handle._thread.is_alive()
        rest = list(it)  # the server closed the stream: iteration ends instead of hanging
        assert all("event" not in m for m in rest)


def test_disconnected_clients_are_forgotten(server) -> None:
    base, control, _ = server
    with httpx.Client(base_url=base) as client:
        for _ in range(3):
            with open_stream(client) as resp:
                next_event(messages(resp.iter_lines()))
    hub = server_hub(control)
    deadline = time.monotonic() + 10
    while hub.client_count and time.monotonic() < deadline:  # a real socket: poll with a deadline
        control.tick()  # the server notices a closed socket when it next writes
        time.sleep(0.05)
    assert hub.client_count == 0


def test_slow_client_loses_oldest_and_is_told() -> None:
    import asyncio

    from vmscale.api.sse import stream

    async def run() -> list[str]:
        hub = EventHub(queue_size=2)
        gen = stream(hub, lambda: [], None, ping_s=5)
        out = [await gen.__anext__()]
        for seq in range(1, 6):
            hub.on_event(Event(seq, 0.0, "tick", {}))
        await asyncio.sleep(0)  # let the call_soon_threadsafe callbacks run
        out.append(await gen.__anext__())
        out.append(await gen.__anext__())
        await gen.aclose()
        return out

    out = asyncio.run(run())
    assert out[1].startswith("id: 4\nevent: lagged\n") and '"dropped":3' in out[1]
    assert out[2].startswith("id: 4\nevent: tick\n")
