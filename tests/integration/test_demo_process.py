"""The main job, end to end: `vmscale demo --quick` with the process provider and real backends.

It asserts the story a user is promised: one overloaded instance, a scale-up to two, the client
discovering the new endpoint over the event stream and getting answers from both servers,
latency falling once the second instance serves, and a scale-in after the load ends with no
failed requests. Timings are compared within the same run, never against absolute numbers.
"""

from __future__ import annotations

import json
import socket
import statistics
from pathlib import Path
from typing import Any

import psutil
import pytest

from vmscale.demo.run import run_demo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_demo(out, quick=True, api_port=_free_port())
    return out


def test_it_scales_up_to_two_and_back_to_one(demo_run: Path) -> None:
    summary = json.loads((demo_run / "summary.json").read_text())
    assert summary["peak_instances"] >= 2
    events = _jsonl(demo_run / "autoscaler.jsonl")
    ups = [e for e in events if e["type"] == "decision" and e["data"].get("direction") == "up"]
    downs = [e for e in events if e["type"] == "decision" and e["data"].get("direction") == "down"]
    assert ups, "no scale-up decision"
    assert downs and downs[-1]["t"] > ups[0]["t"], "no scale-in after the scale-up"
    last_tick = [e for e in events if e["type"] == "tick"][-1]
    assert last_tick["data"]["actual"] == 1


def test_the_client_found_the_new_instance_through_the_event_stream_and_both_answered(demo_run: Path) -> None:
    records = [r for r in _jsonl(demo_run / "client.jsonl") if "t_send" in r]
    servers = {r["server"] for r in records if r["status"] == 200}
    assert {"demo-1", "demo-2"} <= servers
    # The client was only ever given the control API: demo-2's address can only have come from the stream.
    endpoints_events = [e for e in _jsonl(demo_run / "autoscaler.jsonl") if e["type"] == "endpoints"]
    assert any(len(e["data"]["endpoints"]) == 2 for e in endpoints_events)


def test_no_request_failed(demo_run: Path) -> None:
    records = [r for r in _jsonl(demo_run / "client.jsonl") if "t_send" in r]
    failed = [r for r in records if r["status"] != 200]
    assert failed == [], f"{len(failed)} failed requests, e.g. {failed[:3]}"


def test_latency_falls_once_the_second_instance_serves(demo_run: Path) -> None:
    events = _jsonl(demo_run / "autoscaler.jsonl")
    records = [r for r in _jsonl(demo_run / "client.jsonl") if "t_send" in r and r["phase"] == "high"]
    ready_2 = min(
        e["t"]
        for e in events
        if e["type"] == "instance" and e["data"]["to"] == "ready" and e["data"]["name"] != "demo-1"
    )
    high_start = min(r["t_send"] for r in records)
    ups = [e["t"] for e in events if e["type"] == "decision" and e["data"].get("direction") == "up"]
    assert ups and ups[0] >= high_start, "the first scale-up must answer the high load, not come before it"
    high_end = max(r["t_send"] for r in records)
    settled_from = ready_2 + (high_end - ready_2) * 0.5
    before = [r["latency_s"] for r in records if r["t_send"] <= ready_2]
    after = [r["latency_s"] for r in records if r["t_send"] >= settled_from]
    assert before and after
    assert statistics.quantiles(after, n=20)[-1] < statistics.quantiles(before, n=20)[-1], (
        "p95 latency of heavy requests should be lower once two instances serve"
    )


def test_the_report_is_written_and_nothing_is_left_running(demo_run: Path) -> None:
    for name in ("summary.json", "report.html", "client.jsonl", "autoscaler.jsonl"):
        assert (demo_run / name).stat().st_size > 0
    assert len(list(demo_run.glob("*.png"))) >= 3
    html = (demo_run / "report.html").read_text()
    assert "data:image/png;base64," in html
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(demo_run) in " ".join(p.info["cmdline"] or [])
        and "backend" in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
