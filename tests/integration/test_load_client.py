"""The load client against real backend processes, and endpoint discovery against a real SSE server.

Checks what a user relies on: the JSONL log holds exactly what was sent, the summary agrees with
it, ``high`` overloads one backend (latency grows against a light baseline measured in the same
run), the CLI works end to end, and the SSE source follows endpoint changes and reconnects.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.integration.test_backend_process import SRC, free_port, running_backend
from vmscale.percentile import percentile
from vmscale.workload.discovery import DiscoveryError, Endpoint, EventStreamEndpoints, StaticEndpoints
from vmscale.workload.load import LoadOptions, run_phases
from vmscale.workload.load_plan import Phase
from vmscale.workload.load_stats import read_log, summarize


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_log_and_summary_match_what_was_sent(tmp_path: Path) -> None:
    log = tmp_path / "client.jsonl"
    with running_backend("web-1") as (url1, _), running_backend("web-2") as (url2, _):
        phases = [Phase("low", 3.0, rate=5), Phase("step", 1.0, rate=4, n=18, name="fixed")]
        summary = asyncio.run(
            run_phases(phases, StaticEndpoints([url1, url2]), log, options=LoadOptions(seed=5, pick="p2c"))
        )
    lines = _lines(log)
    markers = [x for x in lines if x.get("event") == "phase"]
    records = [x for x in lines if "t_send" in x]
    assert [m["phase"] for m in markers] == ["low", "fixed"]
    assert len(records) == summary.total.count == 15 + 4
    low = [r for r in records if r["phase"] == "low"]
    fixed = [r for r in records if r["phase"] == "fixed"]
    assert len(low) == 15 and len(fixed) == 4
    assert all(15 <= r["n"] <= 25 for r in low) and {r["n"] for r in fixed} == {18}
    assert all(r["status"] == 200 and r["error"] is None and r["latency_s"] > 0 for r in records)
    # The server named in each line is the backend behind the endpoint it was sent to.
    assert {(r["endpoint"], r["server"]) for r in records} <= {(url1, "web-1"), (url2, "web-2")}
    assert {r["server"] for r in records} == {"web-1", "web-2"}
    # The summary is the log's summary: recomputing from the file gives the same figures.
    from_file = summarize(read_log(log)).to_dict()
    got = summary.to_dict()
    for key in ("count", "ok", "errors", "p50_s", "p95_s", "p99_s"):
        assert got[key] == from_file[key], key
    assert got["p50_s"] == percentile([r["latency_s"] for r in records], 50)
    assert {k: v["count"] for k, v in got["by_server"].items()} == {
        s: sum(1 for r in records if r["server"] == s) for s in ("web-1", "web-2")
    }


def test_high_overloads_one_backend(tmp_path: Path) -> None:
    """Same n, same run: one request at a time (baseline) vs ``high`` groups on a 1-worker backend,
    where queued requests wait for the ones before them. Baseline and high alternate three times so
    that noise from other work on the machine hits both alike."""
    log = tmp_path / "client.jsonl"
    baseline = Phase("step", 2.0, rate=4, calibrate_s=0.05, name="baseline")
    high = Phase("high", 2.0, calibrate_s=0.05, concurrency=4, name="high")
    phases = [Phase("high", 2.0, calibrate_s=0.05, name="high-default"), *[baseline, high] * 3]
    with running_backend("web-1", workers=1) as (url, _):
        summary = asyncio.run(run_phases(phases, StaticEndpoints([url]), log, options=LoadOptions(seed=2)))
    by_phase = summary.to_dict()["by_phase"]
    records = [x for x in _lines(log) if "t_send" in x]
    assert len({r["n"] for r in records}) == 1, "all phases use the one calibrated n"
    assert all(by_phase[p]["errors"] == 0 for p in by_phase)
    # high's default group is 2 x the 1 worker /healthz reports: requests go out in pairs.
    sends = sorted(r["t_send"] for r in records if r["phase"] == "high-default")
    groups = [1]
    for before, after in itertools.pairwise(sends):
        if after - before < 0.01:  # launched together (microseconds apart); groups are >= n's time apart
            groups[-1] += 1
        else:
            groups.append(1)
    assert len(groups) >= 2 and set(groups) == {2}, groups
    base_p50, high_p50 = by_phase["baseline"]["p50_s"], by_phase["high"]["p50_s"]
    assert high_p50 > 1.5 * base_p50, f"high p50 {high_p50:.3f} s vs baseline p50 {base_p50:.3f} s"


def test_cli_high_with_json_summary(tmp_path: Path) -> None:
    log = tmp_path / "client.jsonl"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with running_backend("web-3", workers=1) as (url, _):
        cmd = [sys.executable, "-m", "vmscale", "load", "--mode", "high", "--url", url, "--n", "22"]
        cmd += ["--duration", "2", "--log", str(log), "--json", "--pick", "p2c"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    records = [x for x in _lines(log) if "t_send" in x]
    assert summary["count"] == len(records) > 0
    assert summary["by_phase"]["high"]["count"] == len(records)
    assert set(summary["by_server"]) == {"web-3"}
    assert {r["n"] for r in records} == {22}


# --- endpoint discovery over a real SSE stream --------------------------------------------------


@dataclass
class SseState:
    """What the tiny control API serves; the test changes it from its own thread."""

    endpoints: list[dict[str, str]] = field(default_factory=list)
    version: int = 0
    drop: int = 0  # bump to end every open stream (the client must reconnect)
    connections: int = 0
    closing: bool = False
    token: str | None = None

    def set(self, endpoints: list[dict[str, str]]) -> None:
        self.endpoints = endpoints
        self.version += 1


def sse_app(state: SseState) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/events", response_model=None)
    async def events(request: Request) -> StreamingResponse | JSONResponse:
        if state.token and request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"error": "unauthorized", "detail": None}, status_code=401)
        state.connections += 1

        def message(seq: int) -> str:
            data = {"seq": seq, "t": time.time(), "type": "endpoints", "data": {"endpoints": state.endpoints}}
            return f"id: {seq}\nevent: endpoints\ndata: {json.dumps(data)}\n\n"

        async def stream() -> Any:
            seq, version, drop = 1, state.version, state.drop
            yield message(seq)
            yield "event: tick\ndata: {}\n\n"  # other event types are ignored by the client
            while not state.closing and state.drop == drop:
                if state.version != version:
                    seq, version = seq + 1, state.version
                    yield message(seq)
                yield ": ping\n\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


@pytest.fixture
def sse_server() -> Iterator[tuple[str, SseState]]:
    state = SseState()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(sse_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "SSE test server did not start"
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        state.closing = True
        server.should_exit = True
        thread.join(timeout=20)


async def _until(condition: Any, what: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_event_stream_follows_endpoint_changes_and_reconnects(sse_server: tuple[str, SseState]) -> None:
    api, state = sse_server
    state.token = "s3cret"
    state.set([{"name": "web-1", "url": "http://127.0.0.1:18101"}])

    async def scenario() -> None:
        source = EventStreamEndpoints(api, token="s3cret", max_backoff_s=0.5)
        await source.start()
        try:
            assert source.endpoints() == [Endpoint("web-1", "http://127.0.0.1:18101")]
            state.set([*state.endpoints, {"name": "web-2", "url": "http://127.0.0.1:18102"}])
            await _until(lambda: len(source.endpoints()) == 2, "the second endpoint")
            state.set([{"name": "web-2", "url": "http://127.0.0.1:18102"}])
            state.drop += 1  # the stream ends; on reconnect the first message is the current list
            await _until(lambda: state.connections >= 2, "a reconnect")
            await _until(
                lambda: source.endpoints() == [Endpoint("web-2", "http://127.0.0.1:18102")], "the new list"
            )
            assert source.reconnects >= 1
        finally:
            await source.stop()

    asyncio.run(scenario())


def test_event_stream_without_a_valid_token_fails_clearly(sse_server: tuple[str, SseState]) -> None:
    api, state = sse_server
    state.token = "s3cret"

    async def scenario() -> None:
        await EventStreamEndpoints(api, token="wrong", first_list_timeout_s=1.0).start()

    with pytest.raises(DiscoveryError, match="HTTP 401"):
        asyncio.run(scenario())


def test_load_follows_discovered_backends(sse_server: tuple[str, SseState], tmp_path: Path) -> None:
    api, state = sse_server
    log = tmp_path / "client.jsonl"
    with running_backend("web-1") as (url1, _), running_backend("web-2") as (url2, _):
        state.set([{"name": "web-1", "url": url1}])

        async def scenario() -> None:
            stop = asyncio.Event()

            async def switch() -> None:
                await asyncio.sleep(1.5)  # paces the scenario (the load runs meanwhile), not a wait
                state.set([{"name": "web-2", "url": url2}])

            switcher = asyncio.create_task(switch())
            await run_phases([Phase("low", 4.0, rate=10)], EventStreamEndpoints(api), log, stop)
            await switcher

        asyncio.run(scenario())
    records = [x for x in _lines(log) if "t_send" in x]
    servers = [r["server"] for r in sorted(records, key=lambda r: r["t_send"])]
    assert servers[0] == "web-1" and servers[-1] == "web-2"
    switch_at = servers.index("web-2")
    assert set(servers[switch_at:]) == {"web-2"}, "nothing goes to a removed endpoint after the switch"
    assert all(r["status"] == 200 for r in records)


class ConnectionCountingServer:
    """A minimal HTTP/1.1 fib stand-in on loopback that keeps connections open and counts them."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                self.requests += 1
                body = json.dumps({"input": int(path.rsplit("/", 1)[-1]), "result": 0, "server": "c-1"})
                writer.write(
                    f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
                    f"\r\n\r\n{body}".encode()
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(("keepalive", "expected"), [(True, 1), (False, 6)])
def test_keepalive_off_opens_one_connection_per_request(keepalive: bool, expected: int) -> None:
    """`--no-keepalive` exists for the guest's uvicorn, which can cut a kept-alive connection under a
    slow request: with it off, every request has a connection of its own."""
    counter = ConnectionCountingServer()

    async def scenario() -> None:
        server = await asyncio.start_server(counter.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await run_phases(
                [Phase("step", 1.0, rate=6, n=20)],  # one at a time: each answered before the next
                StaticEndpoints([f"http://127.0.0.1:{port}"]),
                None,
                options=LoadOptions(seed=3, timeout_s=10, keepalive=keepalive),
            )

    asyncio.run(scenario())
    assert counter.requests == 6
    assert counter.connections == expected
