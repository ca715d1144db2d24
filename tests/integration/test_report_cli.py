"""`vmscale report DIR` as a user runs it: a real process over logs on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vmscale.report.synthetic import START, write_synthetic_logs


def vmscale(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmscale", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_report_rebuilds_everything_from_the_logs(tmp_path: Path) -> None:
    write_synthetic_logs(tmp_path)
    proc = vmscale("report", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "scale up from 1 to 2" in proc.stdout
    assert "report.html" in proc.stdout
    for name in ("summary.json", "latency.png", "cpu.png", "instances.png", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["new_instance_ready"]["t"] == START + 25.0


def test_report_json_prints_the_summary(tmp_path: Path) -> None:
    write_synthetic_logs(tmp_path)
    proc = vmscale("report", str(tmp_path), "--json", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["peak_instances"] == 2
    assert summary["errors"]["count"] == 2
    assert not (tmp_path / "report.html").exists()


def test_report_synthetic_writes_logs_first(tmp_path: Path) -> None:
    proc = vmscale("report", str(tmp_path / "try"), "--synthetic", "--json")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "try" / "autoscaler.jsonl").exists()
    assert json.loads(proc.stdout)["scale_in"]["t_rel_s"] == 50.0


def test_report_on_a_folder_without_logs_exits_2(tmp_path: Path) -> None:
    proc = vmscale("report", str(tmp_path))
    assert proc.returncode == 2
    assert "autoscaler.jsonl" in proc.stderr
    assert "Traceback" not in proc.stderr
