"""How the operator commands print times, durations, percentages, decisions and events."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from vmscale.event_kinds import EndpointsChanged, ErrorReported, InstanceTransition, TickSummary, parse


def clock(t: Any) -> str:
    if not isinstance(t, int | float):
        return "--:--:--"
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h" if seconds < 172_800 else f"{seconds / 86400:.0f} d"


def pct(x: Any) -> str:
    return f"{x:.0f}%" if isinstance(x, int | float) else "–"


def decision_line(d: dict[str, Any]) -> str:
    """'scale up 1 -> 2 (target: cpu 92% > 60%)', with who and whether it was carried out; a
    pause/resume record (which has no counts) reads 'automatic scaling paused by NAME'."""
    action = d.get("action")
    if action in ("paused", "resumed") and d.get("direction") in (None, "none"):
        return f"automatic scaling {action} by {d.get('actor') or 'someone'}"
    direction = d.get("direction")
    verb = f"scale {direction}" if direction in ("up", "down") else "hold"
    counts = f"{d.get('current')} -> {d.get('desired')}" if verb != "hold" else f"at {d.get('desired')}"
    policy, reason = d.get("policy"), str(d.get("reason"))
    why = reason if reason.startswith(f"{policy}:") else f"{policy}: {reason}"  # no "manual: manual: ..."
    line = f"{verb} {counts} ({why})"
    actor = d.get("actor")
    if actor and actor not in ("policy", "controller", "autoscaler") and str(actor) not in line:
        line += f" by {actor}"
    if d.get("applied") is False:
        line += " [not applied]"
    return line


def event_line(ev: dict[str, Any]) -> str:
    """One human-readable line per event: time, type, what happened."""
    type_, data = str(ev.get("type")), ev.get("data") or {}
    kind = parse(type_, data)
    if isinstance(kind, InstanceTransition):
        what = f"{kind.name} {kind.src} -> {kind.dst}" + (f" ({kind.reason})" if kind.reason else "")
    elif type_ == "decision":
        what = decision_line(data)
    elif isinstance(kind, EndpointsChanged):
        what = "ready endpoints: " + (", ".join(f"{e.name} {e.url}" for e in kind.endpoints) or "none")
    elif isinstance(kind, TickSummary):
        cpus = ", ".join(f"{n} {pct(b.cpu)}" for n, b in kind.instances.items())
        what = f"desired {kind.desired}, actual {kind.actual}, ready {kind.ready}"
        what += f"; cpu {cpus}" if cpus else ""
    elif isinstance(kind, ErrorReported):
        what = f"{kind.where}: {kind.message}" + (f" ({kind.instance})" if kind.instance else "")
    else:
        what = json.dumps(data, sort_keys=True)
    return f"{clock(ev.get('t'))}  {type_:<9} {what}"
