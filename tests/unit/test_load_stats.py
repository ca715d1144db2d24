"""Summary figures against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmscale.workload.load_stats import DROPPED, Record, read_log, summarize


def _ok(latency: float, server: str = "web-1", phase: str = "low", t: float = 0.0) -> Record:
    return Record(t, latency, 200, None, f"http://{server}", server, 20, phase)


def test_summary_counts_errors_per_server_and_phase() -> None:
    records = [
        _ok(0.1, "web-1", "low"),
        _ok(0.3, "web-1", "high"),
        _ok(0.5, "web-2", "high"),
        Record(1.0, 0.2, 503, "HTTP 503", "http://web-2", "web-2", 30, "high"),
        Record(2.0, None, None, DROPPED, "http://web-1", None, 30, "high"),
        Record(3.0, None, None, "ConnectError: refused", "http://web-3", None, 30, "high"),
    ]
    summary = summarize(records)
    d = summary.to_dict()
    assert (d["count"], d["ok"], d["errors"], d["dropped"]) == (6, 3, 3, 1)
    assert d["p50_s"] == pytest.approx(0.3)  # only the three successes: 0.1, 0.3, 0.5
    assert d["p95_s"] == pytest.approx(0.48)  # rank 1.9 -> 0.3 + 0.9*0.2
    assert d["by_phase"]["low"]["count"] == 1
    assert d["by_phase"]["high"] == {
        "count": 5,
        "ok": 2,
        "errors": 3,
        "dropped": 1,
        "p50_s": pytest.approx(0.4),
        "p95_s": pytest.approx(0.49),
        "p99_s": pytest.approx(0.498),
        "mean_s": pytest.approx(0.4),
    }
    assert d["by_server"]["web-2"]["errors"] == 1
    assert d["by_server"]["web-2"]["count"] == 2
    assert set(d["by_server"]) == {"web-1", "web-2", "(no answer) http://web-1", "(no answer) http://web-3"}
    assert list(d["by_phase"]) == ["low", "high"]  # in the order phases ran


def test_read_log_skips_phase_markers(tmp_path: Path) -> None:
    path = tmp_path / "client.jsonl"
    lines = [
        {"event": "phase", "phase": "low", "t": 1.0},
        _ok(0.1, t=1.5).to_dict(),
        {"event": "phase", "phase": "high", "t": 2.0},
        Record(2.5, None, None, "timeout after 60 s", "http://x", None, 30, "high").to_dict(),
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    records = read_log(path)
    assert [r.phase for r in records] == ["low", "high"]
    assert summarize(records).to_dict()["errors"] == 1
