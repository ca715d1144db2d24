"""write_report: summary.json, three PNG plots and a self-contained report.html from the logs."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from vmscale.report import build_summary, write_report
from vmscale.report.html import render_html
from vmscale.report.logs import AUTOSCALER_LOG, read_jsonl, write_jsonl
from vmscale.report.synthetic import autoscaler_events, client_records, write_synthetic_logs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    write_synthetic_logs(out)
    write_report(out)
    return out


def test_summary_json_matches_the_returned_summary(run_dir: Path) -> None:
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["scale_up"]["t_rel_s"] == 20.0
    assert on_disk["skipped_log_lines"] == 0
    assert write_report(run_dir, plots=False) == on_disk


@pytest.mark.parametrize("name", ["latency.png", "cpu.png", "instances.png"])
def test_plots_are_real_pngs(run_dir: Path, name: str) -> None:
    data = (run_dir / name).read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 400


def test_html_is_self_contained_and_shows_the_figures(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    # nothing fetched from elsewhere: no external src/href at all
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "What happened" in page and "web-2 was ready at 25.0 s" in page
    assert "1902 ms" in page  # p95 before the scale-up, in the latency table
    assert "cpu 95% &gt; target 60%" in page  # the decision's reason, escaped


def test_html_escapes_what_the_logs_say() -> None:
    events = autoscaler_events()
    for e in events:
        if e["type"] == "decision":
            e["data"]["reason"] = "<script>alert(1)</script>"
    page = render_html(build_summary(events, client_records()), {})
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_half_written_last_line_and_missing_client_log(tmp_path: Path) -> None:
    write_jsonl(tmp_path / AUTOSCALER_LOG, autoscaler_events())
    with (tmp_path / AUTOSCALER_LOG).open("a") as fh:
        fh.write('{"seq": 999, "t": 17000')  # the demo was killed mid-write
    s = write_report(tmp_path, plots=False)
    assert s["skipped_log_lines"] == 1
    assert s["overload_start"] is None  # no client log, so no phase markers
    assert s["scale_up"]["from"] == 1  # still found: the decision does not need the client
    assert s["requests"]["total"] == 0
    assert (tmp_path / "summary.json").exists()


def test_no_logs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"autoscaler\.jsonl"):
        write_report(tmp_path)


def test_read_jsonl_round_trip(tmp_path: Path) -> None:
    rows = client_records()
    write_jsonl(tmp_path / "x.jsonl", rows)
    assert read_jsonl(tmp_path / "x.jsonl") == (rows, 0)
    assert read_jsonl(tmp_path / "missing.jsonl") == ([], 0)
