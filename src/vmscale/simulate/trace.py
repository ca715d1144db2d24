"""Demand traces: a CSV with columns ``t`` (seconds) and ``demand`` (in instances' worth of work).

``demand`` 1.5 means one and a half instances' full capacity is offered. Between rows the demand
holds the previous row's value (a step function), so a trace needs rows only where demand changes.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path


class TraceError(ValueError):
    """The trace file is unreadable or malformed; the message names the line."""


@dataclass(frozen=True, slots=True)
class Trace:
    t: tuple[float, ...]
    demand: tuple[float, ...]

    @property
    def start(self) -> float:
        return self.t[0]

    @property
    def end(self) -> float:
        return self.t[-1]


def parse_trace(text: str, source: str = "trace") -> Trace:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    if "t" not in fields or "demand" not in fields:
        raise TraceError(
            f"{source}: the header must name the columns 't' and 'demand' (found {fields or 'none'})"
        )
    reader.fieldnames = fields
    ts: list[float] = []
    demand: list[float] = []
    for row in reader:
        line = reader.line_num
        try:
            t, d = float(row["t"]), float(row["demand"])
        except (TypeError, ValueError):
            raise TraceError(f"{source}:{line}: t and demand must be numbers, got {row}") from None
        if not (math.isfinite(t) and math.isfinite(d)) or d < 0:
            raise TraceError(f"{source}:{line}: t must be finite and demand finite and >= 0")
        if ts and t <= ts[-1]:
            raise TraceError(f"{source}:{line}: t must increase (got {t:g} after {ts[-1]:g})")
        ts.append(t)
        demand.append(d)
    if not ts:
        raise TraceError(f"{source}: no rows")
    return Trace(tuple(ts), tuple(demand))


def load_trace(path: Path) -> Trace:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    return parse_trace(text, str(path))
