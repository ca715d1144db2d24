"""report.html: one self-contained page (plots inlined as base64 data URIs, no external
requests), so it can be mailed, attached to a CI run or opened from a USB stick."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
.story { font-size: 1.08rem; line-height: 1.5; background: #f6f8fa; border-left: 4px solid #1f77b4;
         padding: .8rem 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #ddd; padding: .35rem .7rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: .5rem 0 1.5rem; }
.muted { color: #888; }
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _t(moment: Mapping[str, Any] | None, extra: str = "") -> str:
    if not moment:
        return '<span class="muted">did not happen</span>'
    name = f" — {_e(moment[extra])}" if extra and moment.get(extra) else ""
    return f"{moment['t_rel_s']:.1f} s{name}"


def _s(x: float | None, unit: str = "s") -> str:
    if x is None:
        return '<span class="muted">n/a</span>'
    return f"{x * 1000:.0f} ms" if unit == "ms" else f"{x:.1f} s"


def _key_figures(s: Mapping[str, Any]) -> str:
    r = s["reaction_s"]
    rows = [
        ("Run length", _s(s.get("duration_s"))),
        ("Overload started (high load phase)", _t(s.get("overload_start"))),
        ("Scale-up decided", _t(s.get("scale_up"))),
        ("New instance ready", _t(s.get("new_instance_ready"), "instance")),
        ("Client's first answer from it", _t(s.get("first_answer_from_new"), "instance")),
        ("Overload → decision", _s(r.get("overload_to_decision"))),
        ("Decision → ready", _s(r.get("decision_to_ready"))),
        ("Overload → first answer from the new instance", _s(r.get("overload_to_first_answer"))),
        ("Backlog drained (after the first answer from the new instance)", _drain(s.get("backlog"))),
        ("Scale-in", _t(s.get("scale_in"), "instance")),
        ("Peak instance count", _e(s.get("peak_instances"))),
        ("Instance-seconds used", _e(s.get("instance_seconds"))),
        ("Requests (ok / total)", f"{s['requests']['ok']} / {s['requests']['total']}"),
        (
            "Errors",
            _e(s["errors"]["count"])
            + "".join(f"<br>{_e(k)}: {_e(v)}" for k, v in s["errors"]["by_kind"].items()),
        ),
    ]
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return f"<table>{body}</table>"


def _drain(backlog: Mapping[str, Any] | None) -> str:
    if not backlog:
        return '<span class="muted">n/a</span>'
    if backlog.get("still_draining"):
        return "still draining when the high load ended"
    return f"{backlog['drain_s']:.1f} s (at {backlog['drained_rel_s']:.1f} s)"


def _latency_table(s: Mapping[str, Any]) -> str:
    heads = {
        "before": "before the scale-up (overloaded)",
        "during": "while the new instance started",
        "after": "after it answered (to the end of high load)",
        "after_drain": "once the backlog was drained (to the end of high load)",
    }
    rows = []
    for key, label in heads.items():
        w = s["latency"].get(key) or {
            "from_rel_s": None,
            "count": 0,
            "p50_s": None,
            "p95_s": None,
            "p99_s": None,
        }
        span = f"{w['from_rel_s']:.1f}–{w['to_rel_s']:.1f} s" if w["from_rel_s"] is not None else "—"
        cells = "".join(f'<td class="num">{_s(w[p], "ms")}</td>' for p in ("p50_s", "p95_s", "p99_s"))
        rows.append(f"<tr><th>{label}</th><td>{span}</td><td class=num>{w['count']}</td>{cells}</tr>")
    head = (
        "<tr><th>window</th><th>requests sent</th><th>answered</th><th>p50</th><th>p95</th><th>p99</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _decisions_table(s: Mapping[str, Any], limit: int = 200) -> str:
    decisions = s.get("decisions", [])
    if not decisions:
        return '<p class="muted">No scaling decisions were logged.</p>'
    rows = "".join(
        f"<tr><td class=num>{d['t_rel_s']:.1f} s</td><td>{_e(d.get('action') or d['direction'])}</td>"
        f"<td>{_e(d['from'])} → {_e(d['to'])}</td><td>{_e(d['policy'])}</td><td>{_e(d['reason'])}</td>"
        f"<td>{_e(d['actor'])}</td><td>{'yes' if d['applied'] else 'no'}</td></tr>"
        for d in decisions[:limit]
    )
    more = f"<p class=muted>…and {len(decisions) - limit} more.</p>" if len(decisions) > limit else ""
    head = (
        "<tr><th>time</th><th>action</th><th>instances</th><th>policy</th><th>reason</th>"
        "<th>by</th><th>applied</th></tr>"
    )
    return f"<table>{head}{rows}</table>{more}"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def render_html(
    summary: Mapping[str, Any], plots: Mapping[str, Path], title: str = "vmscale run report"
) -> str:
    captions = {
        "latency": "Response time of each request. Each dot is one request, coloured by the server that "
        "answered; crosses are failed requests. Shaded bands are the load phases.",
        "instances": "How many instances the autoscaler wanted (desired), had running (actual) and had in "
        "rotation (ready). Triangles mark scaling decisions.",
        "cpu": "CPU utilisation of each instance, as a percentage of its own vCPUs.",
    }
    figures = "".join(
        f"<h3>{_e(captions[name].split('.')[0])}</h3>{_img(path, captions[name])}<p>{_e(captions[name])}</p>"
        for name, path in plots.items()
        if path.exists()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">Built from autoscaler.jsonl and client.jsonl by <code>vmscale report</code>.
Times are seconds since the run started.</p>
<h2>What happened</h2>
<p class="story">{_e(summary.get("what_happened"))}</p>
<h2>Key figures</h2>
{_key_figures(summary)}
<h2>Response times</h2>
{_latency_table(summary)}
<h2>Plots</h2>
{figures}
<h2>Scaling decisions</h2>
{_decisions_table(summary)}
</body></html>
"""
