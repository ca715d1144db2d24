"""Request records and the summary the load client prints.

A ``Record`` is one line of the JSONL request log (shared wire format)::

    {"t_send", "latency_s", "status", "error", "endpoint", "server", "n", "phase"}

Latency percentiles are ``vmscale.percentile`` (linear interpolation between closest ranks,
numpy's default). Only successful requests (2xx) count towards latency; everything
else (HTTP errors, timeouts, connection failures, requests dropped by the outstanding cap) counts
as an error.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vmscale.percentile import percentile

DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Record:
    t_send: float
    latency_s: float | None
    status: int | None
    error: str | None
    endpoint: str
    server: str | None
    n: int
    phase: str

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GroupStats:
    """Count, errors and latency percentiles of one group of requests (all, one server, one phase)."""

    count: int = 0
    errors: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)

    def add(self, r: Record) -> None:
        self.count += 1
        if r.ok and r.latency_s is not None:
            self.latencies.append(r.latency_s)
        else:
            self.errors += 1
            if r.error == DROPPED:
                self.dropped += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "ok": self.count - self.errors,
            "errors": self.errors,
            "dropped": self.dropped,
            "p50_s": percentile(self.latencies, 50),
            "p95_s": percentile(self.latencies, 95),
            "p99_s": percentile(self.latencies, 99),
            "mean_s": sum(self.latencies) / len(self.latencies) if self.latencies else None,
        }


@dataclass
class Summary:
    """Totals, per server (from the response body; errors without one count under their endpoint)
    and per phase, in phase order. ``duration_s`` is wall time from first send to the end."""

    total: GroupStats = field(default_factory=GroupStats)
    by_server: dict[str, GroupStats] = field(default_factory=lambda: defaultdict(GroupStats))
    by_phase: dict[str, GroupStats] = field(default_factory=lambda: defaultdict(GroupStats))
    first_send: float | None = None
    last_send: float | None = None
    duration_s: float | None = None

    def add(self, r: Record) -> None:
        self.total.add(r)
        self.by_server[r.server or f"(no answer) {r.endpoint}"].add(r)
        self.by_phase[r.phase].add(r)
        self.first_send = r.t_send if self.first_send is None else min(self.first_send, r.t_send)
        self.last_send = r.t_send if self.last_send is None else max(self.last_send, r.t_send)

    @property
    def send_rate(self) -> float | None:
        """Requests per second over the run (count / duration)."""
        if not self.duration_s:
            return None
        return self.total.count / self.duration_s

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.total.to_dict(),
            "duration_s": self.duration_s,
            "send_rate": self.send_rate,
            "by_server": {k: v.to_dict() for k, v in sorted(self.by_server.items())},
            "by_phase": {k: v.to_dict() for k, v in self.by_phase.items()},
        }


def summarize(records: Iterable[Record]) -> Summary:
    summary = Summary()
    for r in records:
        summary.add(r)
    return summary


def read_log(path: Path) -> list[Record]:
    """The request records of a JSONL log (phase markers and unknown lines are skipped)."""
    records = []
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            obj = json.loads(line)
            if "t_send" in obj:
                records.append(Record(**{k: obj.get(k) for k in Record.__dataclass_fields__}))
    return records
