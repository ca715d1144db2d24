"""Describe the machine a benchmark ran on, and write results where BENCHMARKS.md expects them."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


def describe() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def wait_for_quiet(max_load: float | None, max_wait_s: float = 900.0, poll_s: float = 5.0) -> float:
    """Wait (at most ``max_wait_s``) until the 1-minute load average is at or below ``max_load``, so a
    measurement on a shared machine starts when the others' work has come and gone; returns the
    load average it starts at (``None``: no waiting). Bounded: a machine that never calms down is
    measured anyway, and the load is recorded with the figures."""
    deadline = time.monotonic() + max_wait_s
    while max_load is not None and os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(poll_s)
    return round(os.getloadavg()[0], 2)


def write_result(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, "machine": describe(), **payload}, indent=2, default=str))
    return path
