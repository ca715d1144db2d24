"""`vmscale demo --lb haproxy`, end to end: the same story as the process demo, but the load client
knows one address only, HAProxy's front door, and vmscale keeps HAProxy's server list right.

The client cannot have balanced by itself: every request went to the front address, yet answers
came from two servers, so HAProxy spread them after vmscale added the second instance. The
scale-in at the end (drain in HAProxy, wait, delete, terminate) must not fail a single request.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.haproxy_support import free_port
from vmscale.demo.run import run_demo


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if shutil.which("haproxy") is None:
        raise AssertionError("haproxy is not installed: apt-get install haproxy")
    out = tmp_path_factory.mktemp("demo-hap")
    front = f"127.0.0.1:{free_port()}"
    run_demo(
        out,
        quick=True,
        lb="haproxy",
        api_port=free_port(),
        lb_bind=front,
        lb_stats_bind=f"127.0.0.1:{free_port()}",
    )
    return out, f"http://{front}"


def _requests(out: Path) -> list[dict[str, Any]]:
    return [r for r in _jsonl(out / "client.jsonl") if "t_send" in r]


def test_the_client_used_only_the_front_address_and_two_servers_answered(demo_run: tuple[Path, str]) -> None:
    out, front = demo_run
    records = _requests(out)
    assert records, "the load client recorded no request"
    endpoints = {r["endpoint"].rstrip("/") for r in records}
    assert endpoints == {front}, f"clients should only know HAProxy's front {front}, used {endpoints}"
    servers = {r["server"] for r in records if r["status"] == 200}
    assert {"demo-1", "demo-2"} <= servers, f"answers came from {servers}"


def test_it_scales_up_and_back_in(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    events = _jsonl(out / "autoscaler.jsonl")
    ups = [e for e in events if e["type"] == "decision" and e["data"].get("direction") == "up"]
    downs = [e for e in events if e["type"] == "decision" and e["data"].get("direction") == "down"]
    assert ups, "no scale-up decision"
    assert downs and downs[-1]["t"] > ups[0]["t"], "no scale-in after the scale-up"
    drained = [e for e in events if e["type"] == "instance" and e["data"]["to"] == "draining"]
    assert drained, "the scale-in did not drain an instance through the balancer"
    last_tick = [e for e in events if e["type"] == "tick"][-1]
    assert last_tick["data"]["actual"] == 1


def test_no_request_failed_and_the_balancer_reported_no_error(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    failed = [r for r in _requests(out) if r["status"] != 200]
    assert failed == [], f"{len(failed)} failed requests, e.g. {failed[:3]}"
    lb_errors = [
        e
        for e in _jsonl(out / "autoscaler.jsonl")
        if e["type"] == "error" and e["data"]["where"].startswith("lb.")
    ]
    assert lb_errors == [], f"balancer errors during the demo: {lb_errors[:3]}"


def test_nothing_is_left_running(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(out) in " ".join(p.info["cmdline"] or [])
        and ("backend" in " ".join(p.info["cmdline"] or []) or "haproxy" in " ".join(p.info["cmdline"] or []))
    ]
    assert leftovers == [], f"processes of the demo still running: {leftovers}"
