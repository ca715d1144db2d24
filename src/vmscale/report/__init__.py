"""The demo's report, rebuilt at any time from its two JSONL logs.

    summary = write_report(Path("out"))   # out/summary.json, latency.png, cpu.png,
                                          # instances.png and a self-contained out/report.html

``build_summary`` (pure, in ``summary``) computes the figures; ``plots`` draws them;
``html`` assembles the page. Nothing here talks to a running controller.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vmscale.report.logs import AUTOSCALER_LOG, CLIENT_LOG, read_logs
from vmscale.report.summary import build_summary

__all__ = ["AUTOSCALER_LOG", "CLIENT_LOG", "HTML_FILE", "SUMMARY_FILE", "build_summary", "write_report"]

SUMMARY_FILE = "summary.json"
HTML_FILE = "report.html"


def write_report(out_dir: Path, *, plots: bool = True) -> dict[str, Any]:
    """Write summary.json, the PNG plots and report.html into ``out_dir``; return the summary.

    Raises FileNotFoundError when neither log exists (nothing to report on).
    """
    if not (out_dir / AUTOSCALER_LOG).exists() and not (out_dir / CLIENT_LOG).exists():
        raise FileNotFoundError(f"{out_dir}: neither {AUTOSCALER_LOG} nor {CLIENT_LOG} is there")
    logs = read_logs(out_dir)
    summary = build_summary(logs.autoscaler, logs.client)
    summary["skipped_log_lines"] = logs.skipped_lines
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if plots:
        # Imported here: matplotlib takes a second to load and `--json` callers may not need it.
        from vmscale.report.html import render_html
        from vmscale.report.plots import write_plots

        paths = write_plots(logs.autoscaler, logs.client, summary, out_dir)
        (out_dir / HTML_FILE).write_text(render_html(summary, paths), encoding="utf-8")
    return summary
