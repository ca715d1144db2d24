"""The demo's live terminal view (rich): scenario progress, instances, client latency, events."""

from __future__ import annotations

import collections
import time
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vmscale.control import ControlPlane
from vmscale.events import Event
from vmscale.workload.load_stats import Record

STATE_STYLE = {
    "ready": "green",
    "booting": "yellow",
    "pending": "yellow",
    "draining": "magenta",
    "terminating": "red",
    "failed": "bold red",
    "warm": "cyan",
}


class DemoDisplay:
    def __init__(self, control: ControlPlane, total_s: float) -> None:
        self.control = control
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        )
        self.task = self.progress.add_task("starting", total=total_s)
        self.lines: collections.deque[str] = collections.deque(maxlen=8)
        self.latencies: collections.deque[tuple[float, float]] = collections.deque(maxlen=400)
        self.servers: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self.phase = "starting"

    def on_event(self, ev: Event) -> None:
        d = ev.data
        stamp = time.strftime("%H:%M:%S", time.localtime(ev.t))
        if ev.type == "instance":
            self.lines.append(f"{stamp} [bold]{d['name']}[/] {d['from']} → {d['to']}: {d['reason']}")
        elif ev.type == "decision" and d.get("applied"):
            self.lines.append(
                f"{stamp} [cyan]decision[/] {d.get('direction')} → {d.get('desired')}: {d.get('reason')}"
            )
        elif ev.type == "error":
            self.lines.append(f"{stamp} [red]error[/] {d.get('message')}")

    def on_record(self, r: Record) -> None:
        if r.ok and r.latency_s is not None:
            self.latencies.append((r.t_send, r.latency_s))
            self.servers[r.server or "?"] += 1
        else:
            self.errors += 1

    def set_phase(self, phase: str, elapsed: float) -> None:
        self.phase = phase
        self.progress.update(self.task, description=f"phase: {phase}", completed=elapsed)

    def render(self) -> Group:
        inst = Table(title="instances", expand=True)
        for col in ("name", "state", "cpu", "endpoint"):
            inst.add_column(col)
        for i in self.control.instances():
            style = STATE_STYLE.get(i.state, "")
            cpu = "" if i.cpu is None else f"{i.cpu:5.1f}%"
            inst.add_row(i.name, f"[{style}]{i.state}[/]", cpu, i.endpoint)
        g = self.control.group()
        recent = [lat for t, lat in self.latencies if t > time.time() - 5]
        recent.sort()
        p50 = recent[len(recent) // 2] if recent else None
        client = Table.grid(padding=(0, 2))
        client.add_row(
            f"desired [bold]{g.desired}[/]",
            f"ready [bold]{g.ready}[/]",
            f"latency p50 (last 5 s): [bold]{p50:.2f} s[/]" if p50 is not None else "latency: -",
            f"answers by server: {dict(self.servers)}",
            f"errors: {self.errors}",
        )
        return Group(
            self.progress, inst, client, Panel("\n".join(self.lines) or "(no events yet)", title="events")
        )

    def as_dict(self) -> dict[str, Any]:
        return {"servers": dict(self.servers), "errors": self.errors}
