"""The load engine with a fake clock and httpx.MockTransport: open-loop sends happen on schedule even
when the server does not answer, the outstanding cap drops (and says so), high is sized from
/healthz, endpoint picking, the JSONL log, SSE parsing."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path

import httpx
import pytest

from vmscale.workload.discovery import (
    DiscoveryError,
    Endpoint,
    StaticEndpoints,
    endpoints_from_event,
    parse_sse,
)
from vmscale.workload.load import LoadOptions, calibrate_n, pick_endpoint, run_phases
from vmscale.workload.load_plan import LoadParameterError, Phase
from vmscale.workload.load_stats import Summary

URL = "http://127.0.0.1:9"  # never contacted: MockTransport answers


class FakeLoadClock:
    """Jumps to the planned time instead of sleeping. Before jumping it yields to the event loop a
    few times, so requests launched at the current time reach the (mock) server at that time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep_until(self, monotonic_t: float, stop: asyncio.Event) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        self.t = max(self.t, monotonic_t)


Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class HangingServer:
    """Answers nothing until the (fake) clock reaches ``release_at``: a server too slow to matter."""

    def __init__(self, clock: FakeLoadClock, release_at: float) -> None:
        self.clock = clock
        self.release_at = release_at
        self.arrived: list[tuple[float, str]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.arrived.append((self.clock.t, request.url.path))
        while self.clock.t < self.release_at:
            await asyncio.sleep(0)  # a yield: the fake clock only moves when the sender moves it
        n = int(request.url.path.strip("/"))
        return httpx.Response(200, json={"input": n, "result": 0, "server": "slow-1"})


def run_step(
    phases: list[Phase], handler: Handler, clock: FakeLoadClock, log: Path | None = None, **opts: object
) -> Summary:
    return asyncio.run(
        run_phases(
            phases,
            StaticEndpoints([URL]),
            log,
            options=LoadOptions(seed=1, **opts),  # type: ignore[arg-type]
            clock=clock,
            transport=httpx.MockTransport(handler),
        )
    )


def test_open_loop_sends_on_schedule_while_nothing_is_answered(tmp_path: Path) -> None:
    clock = FakeLoadClock()
    server = HangingServer(clock, release_at=1001.0)
    summary = run_step([Phase("step", 1.0, rate=20, n=25)], server, clock, tmp_path / "c.jsonl")
    # All 20 requests reached the server at their planned times, before any was answered.
    assert [t - 1000.0 for t, _ in server.arrived] == pytest.approx([i / 20 for i in range(20)])
    records = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    sent = [r for r in records if "t_send" in r]
    assert sorted(r["t_send"] - 1000.0 for r in sent) == pytest.approx([i / 20 for i in range(20)])
    # They were answered only when the phase ended (t=1.0), so latency is counted from the send.
    assert sorted(r["latency_s"] for r in sent) == pytest.approx(sorted(1.0 - i / 20 for i in range(20)))
    assert summary.total.count == 20 and summary.total.errors == 0


def test_outstanding_cap_drops_and_counts_errors() -> None:
    clock = FakeLoadClock()
    server = HangingServer(clock, release_at=1001.0)
    summary = run_step([Phase("step", 1.0, rate=20, n=25)], server, clock, max_outstanding=5)
    assert len(server.arrived) == 5
    d = summary.to_dict()
    assert (d["count"], d["ok"], d["errors"], d["dropped"]) == (20, 5, 15, 15)


def test_high_groups_are_twice_the_reported_workers(tmp_path: Path) -> None:
    clock = FakeLoadClock()
    groups: list[int] = []
    in_group = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_group
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok", "server": "w", "inflight": 0, "workers": 3})
        in_group += 1
        await asyncio.sleep(0)  # let the rest of the group arrive (a yield, not a wait)
        if in_group:
            groups.append(in_group)
            in_group = 0
        clock.t += 0.1  # each group takes 0.1 s of (fake) time
        return httpx.Response(200, json={"input": 28, "result": 317811, "server": "w"})

    summary = run_step([Phase("high", 1.0, n=28)], handler, clock, tmp_path / "c.jsonl")
    assert groups and set(groups) == {6}
    assert summary.total.count == 6 * len(groups)
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["event"] == "phase"
    assert {json.loads(x)["n"] for x in lines[1:]} == {28}


def test_phases_run_back_to_back_with_markers(tmp_path: Path) -> None:
    clock = FakeLoadClock()

    async def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.path.strip("/"))
        return httpx.Response(200, json={"input": n, "result": 1, "server": "web-1"})

    phases = [Phase("low", 5.0), Phase("idle", 3.0), Phase("step", 1.0, rate=4, n=27, name="burst")]
    summary = run_step(phases, handler, clock, tmp_path / "c.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    markers = [x for x in lines if x.get("event") == "phase"]
    assert [(m["phase"], m["t"] - 1000.0) for m in markers] == [("low", 0.0), ("idle", 5.0), ("burst", 8.0)]
    low = [x for x in lines if x.get("phase") == "low" and "t_send" in x]
    assert len(low) == 10  # 2/s for 5 s
    assert all(15 <= x["n"] <= 25 for x in low)
    assert [x["n"] for x in lines if x.get("phase") == "burst" and "t_send" in x] == [27] * 4
    assert summary.by_phase.keys() == {"low", "burst"}
    assert all(x["endpoint"] == URL and x["server"] == "web-1" for x in low)


def test_http_errors_and_refused_connections_are_logged_as_errors() -> None:
    clock = FakeLoadClock()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/16":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503, json={"error": "busy", "detail": None})

    summary = run_step(
        [Phase("step", 1.0, rate=2, n=16), Phase("step", 1.0, rate=2, n=17, name="b")], handler, clock
    )
    d = summary.to_dict()
    assert (d["count"], d["errors"], d["p50_s"]) == (4, 4, None)
    assert d["by_phase"]["step"]["errors"] == 2 and d["by_phase"]["b"]["errors"] == 2


def test_absurd_options_are_refused_before_sending() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    with pytest.raises(LoadParameterError) as info:
        run_step([Phase("step", 1.0, rate=6000)], handler, FakeLoadClock(), pick="fastest")
    assert len(info.value.problems) == 2


def test_p2c_prefers_the_less_busy_endpoint() -> None:
    eps = [Endpoint("a", "http://a"), Endpoint("b", "http://b")]
    busy = {"http://a": 5, "http://b": 1}
    rng = random.Random(3)
    assert {pick_endpoint(eps, "p2c", busy, rng).name for _ in range(50)} == {"b"}
    picks = Counter(pick_endpoint(eps, "random", busy, rng).name for _ in range(400))
    assert 150 < picks["a"] < 250  # random ignores load (as the original client did)


def test_calibration_extrapolates_exponential_cost() -> None:
    # A fake target where fib(n) costs 1 ms * PHI^(n-20) plus 2 ms overhead.
    phi = (1 + 5**0.5) / 2
    asked: list[int] = []

    async def timed(url: str, n: int, tries: int = 3) -> float:
        asked.append(n)
        return 0.002 + (0.0 if n == 0 else 0.001 * phi ** (n - 20))

    n = asyncio.run(calibrate_n(timed, URL, target_s=0.25, max_n=40))
    assert n == 31  # 0.001 * PHI^11 = 0.199 s, PHI^12 = 0.322 s: 31 is the closest
    assert asyncio.run(calibrate_n(timed, URL, target_s=5.0, max_n=30)) == 30  # clamped to the ceiling


def test_parse_sse_messages() -> None:
    assert parse_sse([": ping"]) is None
    assert parse_sse(["id: 4", "event: endpoints", 'data: {"a":', "data: 1}"]) == ("endpoints", '{"a":\n1}')
    assert parse_sse(["data:x"]) == ("message", "x")
    body = {
        "seq": 1,
        "t": 0.0,
        "type": "endpoints",
        "data": {"endpoints": [{"name": "web-1", "url": "http://h:1/"}]},
    }
    assert endpoints_from_event(json.dumps(body)) == [Endpoint("web-1", "http://h:1")]
    assert endpoints_from_event(json.dumps({"endpoints": []})) == []


def test_cli_refuses_absurd_parameters_with_exit_code_2() -> None:
    from typer.testing import CliRunner

    from vmscale.cli import app

    result = CliRunner().invoke(app, ["load", "--mode", "step", "--rate", "6000", "--url", URL])
    assert result.exit_code == 2
    assert re.search(r"rate must be within 0\.\.5000", result.output)
    result = CliRunner().invoke(app, ["load", "--mode", "low"])
    assert result.exit_code == 2
    assert "--url" in result.output


class LateEndpoints:
    """An endpoint source where nothing is ready for the first ``empty_calls`` look-ups."""

    def __init__(self, empty_calls: int) -> None:
        self.calls = 0
        self.empty_calls = empty_calls

    def endpoints(self) -> list[Endpoint]:
        self.calls += 1
        return [] if self.calls <= self.empty_calls else [Endpoint("web-1", URL)]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.mark.parametrize(("empty_calls", "ready"), [(5, True), (10**6, False)])
def test_high_waits_for_a_first_endpoint(empty_calls: int, ready: bool) -> None:
    clock = FakeLoadClock()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok", "server": "web-1", "inflight": 0, "workers": 1})
        clock.t += 0.5
        return httpx.Response(200, json={"input": 20, "result": 6765, "server": "web-1"})

    run = run_phases(
        [Phase("high", 2.0, n=20)],
        LateEndpoints(empty_calls),
        None,
        clock=clock,
        transport=httpx.MockTransport(handler),
    )
    if ready:
        summary = asyncio.run(run)
        assert summary.total.count >= 2 and summary.total.errors == 0
        assert clock.t - 1000.0 >= 1.0  # it waited (in fake time) before sizing the groups
    else:
        with pytest.raises(DiscoveryError, match="no endpoint ready"):
            asyncio.run(run)
