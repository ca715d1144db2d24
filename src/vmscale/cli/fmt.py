"""How the operator commands print times, durations, percentages, decisions and events."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from vmscale.event_kinds import (
    EndpointsChanged,
    ErrorReported,
    InstanceResized,
    InstanceTransition,
    TickSummary,
    parse,
)


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
    if d.get("placement"):  # vertical-first: where the capacity went, and why, for machines
        line += f" [{d['placement']}]"
    actor = d.get("actor")
    if actor and actor not in ("policy", "controller", "autoscaler") and str(actor) not in line:
        line += f" by {actor}"
    if d.get("applied") is False:
        line += " [not applied]"
    return line


def golden_line(g: dict[str, Any]) -> str:
    """The golden snapshot clones are restored from, in words (a ``golden`` event or the status)."""
    state = g.get("stage") or g.get("state")
    if state == "making":
        return "golden snapshot being made (a scale-up before it is ready waits for it)"
    if state == "failed":
        then = g.get("next") or "it is tried again, and a clone launch meanwhile makes it"
        return f"golden snapshot could not be made: {g.get('error')}; {then}"
    made = "made" if g.get("made_now") else "found ready, made"
    at = f" at {clock(g.get('made_at'))}" if g.get("made_at") else ""
    return (
        f"golden snapshot {g.get('key')} ready: {g.get('size_mb', 0):.0f} MiB, {made}{at} "
        f"(booted in {g.get('boot_s', 0):.1f} s, saved in {g.get('save_s', 0):.1f} s)"
    )


def event_line(ev: dict[str, Any], *, show_group: bool = False) -> str:
    """One human-readable line per event: time, (its group, when several are shown,) type, what
    happened. An event logged before groups existed has none and shows '-'."""
    type_, data = str(ev.get("type")), ev.get("data") or {}
    kind = parse(type_, data)
    if isinstance(kind, InstanceTransition):
        what = f"{kind.name} {kind.src} -> {kind.dst}" + (f" ({kind.reason})" if kind.reason else "")
    elif type_ == "decision":
        what = decision_line(data)
    elif isinstance(kind, InstanceResized):
        what = f"{kind.name} {kind.vcpus_from} -> {kind.vcpus_to} vCPUs {kind.stage}"
        if kind.seconds is not None:
            what += f", {kind.seconds:.2f} s after the decision"
        what += f" ({kind.reason})" if kind.reason else ""
    elif isinstance(kind, EndpointsChanged):
        what = "ready endpoints: " + (", ".join(f"{e.name} {e.url}" for e in kind.endpoints) or "none")
    elif isinstance(kind, TickSummary):
        cpus = ", ".join(f"{n} {pct(b.cpu)}" for n, b in kind.instances.items())
        what = f"desired {kind.desired}, actual {kind.actual}, ready {kind.ready}"
        what += f"; cpu {cpus}" if cpus else ""
    elif type_ == "golden":
        what = golden_line(data)
    elif isinstance(kind, ErrorReported):
        what = f"{kind.where}: {kind.message}" + (f" ({kind.instance})" if kind.instance else "")
    elif isinstance(data.get("message"), str):  # placement, host, migration, ...: a sentence each
        what = data["message"]
    else:
        what = json.dumps(data, sort_keys=True)
    group = f"{ev.get('group') or '-':<12} " if show_group else ""
    return f"{clock(ev.get('t'))}  {group}{type_:<9} {what}"
