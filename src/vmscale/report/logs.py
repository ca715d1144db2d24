"""Reading the demo's two JSONL logs, tolerantly.

A demo that was interrupted leaves a half-written last line, and a log written by a newer
version may carry lines this one does not know. Neither should stop a report from being
built, so unreadable lines are counted (and shown in the report) rather than raised.

The autoscaler's log rotates by size (``vmscale.events.JsonlWriter``): the events are read from
the rotated files, oldest first, then the current one; decisions, instance changes and errors
older than the oldest kept line come from ``decisions.jsonl``, which rotates rarely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmscale.events import AUTOSCALER_LOG, DECISIONS_LOG

CLIENT_LOG = "client.jsonl"
__all__ = ["AUTOSCALER_LOG", "CLIENT_LOG", "DECISIONS_LOG", "Logs", "read_jsonl", "read_logs", "write_jsonl"]


@dataclass
class Logs:
    """Both logs of one run, as plain dicts in file order."""

    autoscaler: list[dict[str, Any]] = field(default_factory=list)
    client: list[dict[str, Any]] = field(default_factory=list)
    skipped_lines: int = 0


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSONL file and the number of lines that were not one.

    A missing file reads as empty: a run without a load client still has an autoscaler log.
    """
    if not path.exists():
        return [], 0
    rows: list[dict[str, Any]] = []
    skipped = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(obj, dict):
                rows.append(obj)
            else:
                skipped += 1
    return rows, skipped


def rotated(path: Path) -> list[Path]:
    """``path`` and its rotated copies (``path.1`` newest), oldest first."""
    backups = [p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()]
    return [*sorted(backups, key=lambda p: -int(p.suffix[1:])), path]


def read_rotated(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    skipped = 0
    for part in rotated(path):
        more, bad = read_jsonl(part)
        rows += more
        skipped += bad
    return rows, skipped


def _time(row: dict[str, Any]) -> float:
    t = row.get("t")
    return float(t) if isinstance(t, int | float) else float("-inf")


def read_logs(out_dir: Path) -> Logs:
    events, skipped_a = read_rotated(out_dir / AUTOSCALER_LOG)
    older, skipped_d = read_rotated(out_dir / DECISIONS_LOG)
    if older:  # only what rotation pushed out of the full log
        first = min((_time(e) for e in events), default=float("inf"))
        events = [e for e in older if _time(e) < first] + events
    records, skipped_c = read_jsonl(out_dir / CLIENT_LOG)
    return Logs(events, records, skipped_a + skipped_d + skipped_c)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
