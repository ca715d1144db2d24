"""The report's three PNG plots, drawn with matplotlib's Agg backend (no display needed).

Each plot must be readable by someone who never read the code: a title that says what it
shows, axes with units, a legend, the load phases as shaded bands and the key moments
(scale-up decision, new instance ready, scale-in) as labelled vertical lines. Time is always
seconds since the start of the run, so the three plots line up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vmscale.event_kinds import TickSummary, read_logged
from vmscale.report.summary import is_error, split_client_log

PHASE_COLOURS = {"low": "#e8f4e8", "high": "#fde2e1", "idle": "#eaeaf2", "step": "#fff3d6"}
MOMENT_STYLE = {
    "scale_up": ("scale-up decided", "#d62728", "--"),
    "new_instance_ready": ("new instance ready", "#2ca02c", "--"),
    "first_answer_from_new": ("first answer from it", "#1f77b4", ":"),
    "scale_in": ("scale-in", "#9467bd", "-."),
}
FILES = {"latency": "latency.png", "cpu": "cpu.png", "instances": "instances.png"}


def _phase_spans(
    markers: Sequence[dict[str, Any]], start: float, end: float
) -> list[tuple[str, float, float]]:
    spans = []
    for i, m in enumerate(markers):
        lo = float(m["t"]) - start
        hi = float(markers[i + 1]["t"]) - start if i + 1 < len(markers) else end - start
        spans.append((str(m.get("phase")), lo, hi))
    return spans


def _decorate(ax: Axes, spans: list[tuple[str, float, float]], summary: dict[str, Any], labels: bool) -> None:
    """Shade the phases and mark the key moments (labels in the legend of the first call only)."""
    seen: set[str] = set()
    for phase, lo, hi in spans:
        ax.axvspan(
            lo,
            hi,
            color=PHASE_COLOURS.get(phase, "#f2f2f2"),
            zorder=0,
            label=f"{phase} load phase" if labels and phase not in seen else None,
        )
        seen.add(phase)
    for key, (label, colour, style) in MOMENT_STYLE.items():
        moment = summary.get(key)
        if moment:
            ax.axvline(moment["t_rel_s"], color=colour, linestyle=style, linewidth=1.4, label=label, zorder=3)


def _finish(fig: Figure, ax: Axes, path: Path) -> None:
    ax.grid(True, alpha=0.3, zorder=1)
    ax.set_xlabel("time since start of run (s)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(
    client: Sequence[dict[str, Any]], summary: dict[str, Any], start: float, end: float, path: Path
) -> None:
    """Response time of every request, by server, like the original's log-plot.png."""
    markers, requests = split_client_log(client)
    fig, ax = plt.subplots(figsize=(11, 5))
    _decorate(ax, _phase_spans(markers, start, end), summary, labels=True)
    servers = sorted(
        {str(r.get("server")) for r in requests if not is_error(r) and r.get("latency_s") is not None}
    )
    cmap = plt.get_cmap("tab10")
    for i, server in enumerate(servers):
        pts = [
            (float(r["t_send"]) - start, float(r["latency_s"]))
            for r in requests
            if str(r.get("server")) == server and not is_error(r) and r.get("latency_s") is not None
        ]
        xs, ys = zip(*pts, strict=True)
        ax.scatter(xs, ys, s=14, color=cmap(i % 10), label=f"answered by {server}", zorder=4, alpha=0.85)
    errors = [r for r in requests if is_error(r)]
    if errors:
        top = max([float(r["latency_s"]) for r in requests if r.get("latency_s")] or [1.0])
        ax.scatter(
            [float(r["t_send"]) - start for r in errors],
            [float(r["latency_s"]) if r.get("latency_s") else top for r in errors],
            marker="x",
            s=40,
            color="black",
            label=f"failed request ({len(errors)})",
            zorder=5,
        )
    if requests:
        ax.set_yscale("log")
    ax.set_ylabel("response time (s, log scale)")
    ax.set_title("Response time of each request, coloured by the server that answered")
    _finish(fig, ax, path)


def plot_cpu(
    events: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    start: float,
    end: float,
    path: Path,
    markers: Sequence[dict[str, Any]],
) -> None:
    """CPU utilisation of each instance (percent of its own vCPUs), from the tick events."""
    series: dict[str, list[tuple[float, float]]] = {}
    for e in read_logged(events, TickSummary):
        for name, brief in e.kind.instances.items():
            if isinstance(brief.cpu, int | float):
                series.setdefault(name, []).append((e.t - start, float(brief.cpu)))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    _decorate(ax, _phase_spans(markers, start, end), summary, labels=True)
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(sorted(series)):
        xs, ys = zip(*series[name], strict=True)
        ax.plot(xs, ys, color=cmap(i % 10), linewidth=1.8, marker=".", markersize=4, label=name, zorder=4)
    ax.set_ylim(0, 105)
    ax.set_ylabel("CPU utilisation (% of its vCPUs)")
    ax.set_title("CPU utilisation of each instance")
    _finish(fig, ax, path)


def plot_instances(
    events: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    start: float,
    end: float,
    path: Path,
    markers: Sequence[dict[str, Any]],
) -> None:
    """Desired, live and ready instance counts over time, with every applied decision marked."""
    ticks = read_logged(events, TickSummary)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    _decorate(ax, _phase_spans(markers, start, end), summary, labels=True)
    xs = [e.t - start for e in ticks]
    peak = 1
    # The three lines often coincide; width, transparency and dashes keep each one visible.
    styles: list[tuple[str, str, dict[str, Any]]] = [
        ("desired", "desired (wanted)", {"color": "#d62728", "linewidth": 6, "alpha": 0.35}),
        ("actual", "actual (launched, not yet gone)", {"color": "#1f77b4", "linewidth": 2.2}),
        ("ready", "ready (in rotation)", {"color": "#2ca02c", "linewidth": 1.8, "linestyle": "--"}),
    ]
    for key, label, style in styles:
        ys = [getattr(e.kind, key) for e in ticks]
        pts = [(x, float(y)) for x, y in zip(xs, ys, strict=True) if isinstance(y, int | float)]
        if pts:
            px, py = zip(*pts, strict=True)
            peak = max(peak, int(max(py)))
            ax.step(px, py, where="post", label=label, zorder=4, **style)
    for d in summary.get("decisions", []):
        if not d["applied"] or d["direction"] not in ("up", "down"):
            continue
        up = d["direction"] == "up"
        ax.plot(
            d["t_rel_s"],
            d["to"],
            marker="^" if up else "v",
            markersize=11,
            color="#d62728" if up else "#9467bd",
            linestyle="none",
            zorder=6,
        )
    ax.plot([], [], marker="^", color="#d62728", linestyle="none", label="scale-up decision")
    ax.plot([], [], marker="v", color="#9467bd", linestyle="none", label="scale-in decision")
    ax.set_ylim(0, peak + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("instances")
    ax.set_title("Instance count over time, with scale events")
    _finish(fig, ax, path)


def write_plots(
    events: Sequence[dict[str, Any]], client: Sequence[dict[str, Any]], summary: dict[str, Any], out_dir: Path
) -> dict[str, Path]:
    """Draw all three plots into ``out_dir``; returns {plot name: path}."""
    start, end = summary.get("start_t"), summary.get("end_t")
    if start is None or end is None:
        start = end = 0.0
    markers, _ = split_client_log(client)
    paths = {name: out_dir / fname for name, fname in FILES.items()}
    plot_latency(client, summary, start, end, paths["latency"])
    plot_cpu(events, summary, start, end, paths["cpu"], markers)
    plot_instances(events, summary, start, end, paths["instances"], markers)
    return paths
