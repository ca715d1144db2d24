"""The autoscaler's event logs are bounded: autoscaler.jsonl (every event, a tick per interval)
rotates by size, decisions.jsonl (everything but ticks) keeps the decisions that ticks push out,
and the report still reads the whole story back."""

from __future__ import annotations

import json
from pathlib import Path

from vmscale.config import parse_config
from vmscale.event_kinds import DecisionApplied, InstanceBrief, InstanceTransition, TickSummary
from vmscale.events import AUTOSCALER_LOG, DECISIONS_LOG, EventBus, JsonlWriter
from vmscale.providers.fake import FakeProvider
from vmscale.report.logs import read_logs
from vmscale.service import Service


def tick(bus: EventBus, n: int) -> None:
    bus.publish(TickSummary(1, 1, 1, 0, {"web-1": InstanceBrief("ready", float(n))}))


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_size_limited_log_rotates_and_keeps_its_backups(tmp_path: Path) -> None:
    bus = EventBus(clock=iter(range(100_000)).__next__)
    writer = JsonlWriter(tmp_path / AUTOSCALER_LOG, max_bytes=4096, backups=2)
    bus.add_listener(writer)
    for n in range(1000):
        tick(bus, n)
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [AUTOSCALER_LOG, f"{AUTOSCALER_LOG}.1", f"{AUTOSCALER_LOG}.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 4096
        assert all(row["type"] == "tick" for row in lines(path))  # whole lines, never cut


def test_unlimited_by_default_and_closed_means_closed(tmp_path: Path) -> None:
    bus = EventBus()
    writer = JsonlWriter(tmp_path / "a.jsonl")
    bus.add_listener(writer)
    for n in range(200):
        tick(bus, n)
    writer.close()
    tick(bus, 200)  # after close: not written, and the file is not reopened
    assert len(lines(tmp_path / "a.jsonl")) == 200
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]


def test_decisions_survive_the_rotation_of_ticks_and_the_report_reads_them(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "group": {"name": "web", "min": 0},
            "provider": {"kind": "fake"},
            "state": {"dir": str(tmp_path)},
            # tiny limits so that rotation happens within the test; one backup of the full stream
            "event_log": {"max_mb": 0.004, "backups": 1, "decisions_max_mb": 1, "decisions_backups": 1},
        }
    )
    svc = Service(cfg, provider=FakeProvider(), serve_api=False)
    bus = svc.events
    bus.publish(DecisionApplied(2, 1, "up", "the first decision", "cpu-target", "autoscaler"))
    for n in range(500):
        tick(bus, n)
    bus.publish(InstanceTransition("web-2", "booting", "ready", "healthy"))
    svc.stop(terminate=False)

    full = [
        row for path in (tmp_path / f"{AUTOSCALER_LOG}.1", tmp_path / AUTOSCALER_LOG) for row in lines(path)
    ]
    assert "the first decision" not in json.dumps(full), "the test needs the decision rotated out"
    assert (tmp_path / AUTOSCALER_LOG).stat().st_size <= 0.004 * 2**20
    kept = lines(tmp_path / DECISIONS_LOG)
    assert [row["type"] for row in kept] == ["decision", "instance"]

    events = read_logs(tmp_path).autoscaler
    assert events[0]["type"] == "decision" and events[0]["data"]["reason"] == "the first decision"
    assert events[-1]["type"] == "instance"
    ticks = [e for e in events if e["type"] == "tick"]
    assert ticks == [e for e in full if e["type"] == "tick"]  # every tick still kept, in order
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # no decision twice
