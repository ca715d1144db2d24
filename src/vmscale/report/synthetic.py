"""Realistic synthetic logs of one demo run: a scale-up from 1 to 2 and a scale-in back to 1.

Used by the tests (whose expected figures are computed by hand from the numbers below) and
handy for trying the report without running the demo::

    vmscale report out --synthetic     # writes these logs into out/, then the report

The story, in seconds since ``start``:

* 0   low phase: one request per second to web-1 (sent at 0.5, 1.5 ... 9.5), 50 ms each;
* 10  high phase: two requests per second; web-1 is overloaded, latency 1.00 s + 0.05 s per
  request (1.00 ... 1.95 s for the 20 requests sent before 20);
* 20  the target policy decides 1 -> 2; web-2 pending 20.1, booting 20.5, ready 25.0;
  web-1 answers in 2.0 s; the request sent at 22.0 times out, the one at 23.0 gets a 503;
* 25.5 first request to web-2 (0.1 s, so the answer arrives at 25.6);
* 26 ... 39.5 requests alternate web-2 (0.2 s) and web-1 (0.4 s);
* 40  idle phase: one request every 2 s (50 ms);
* 50  the policy decides 2 -> 1; web-2 draining 50.2, terminating 52.0, gone 53.0.

Ticks every second from 0 to 60: actual 1 up to 20, 2 from 21 to 52, 1 from 53.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmscale.report.logs import AUTOSCALER_LOG, CLIENT_LOG, write_jsonl

START = 1_700_000_000.0
URLS = {"web-1": "http://127.0.0.1:18101", "web-2": "http://127.0.0.1:18102"}


def _tick(t: float) -> dict[str, Any]:
    desired = 2 if 20 <= t < 50 else 1
    actual = 2 if 21 <= t <= 52 else 1
    ready = 2 if 25 < t < 50 else 1
    if t < 10:
        cpu1 = 30.0
    elif t < 26:
        cpu1 = 95.0
    elif t < 40:
        cpu1 = 62.0
    else:
        cpu1 = 10.0
    instances: dict[str, Any] = {"web-1": {"state": "ready", "cpu": cpu1}}
    if 21 <= t <= 52:
        state = "booting" if t < 25 else "ready" if t < 50.2 else "draining"
        cpu2 = 20.0 if t < 25 else 55.0 if t < 40 else 8.0
        instances["web-2"] = {"state": state, "cpu": cpu2}
    return {
        "desired": desired,
        "actual": actual,
        "ready": ready,
        "instances": instances,
        "latency_p95_s": None,
        "rps": 2.0 if 10 <= t < 40 else 1.0,
    }


def autoscaler_events(start: float = START) -> list[dict[str, Any]]:
    raw: list[tuple[float, str, dict[str, Any]]] = [(float(s), "tick", _tick(float(s))) for s in range(61)]
    raw.append(
        (
            0.0,
            "instance",
            {"name": "web-1", "from": "booting", "to": "ready", "reason": "health check passed"},
        )
    )
    raw.append(
        (
            20.0,
            "decision",
            {
                "desired": 2,
                "direction": "up",
                "reason": "cpu 95% > target 60%",
                "policy": "target",
                "current": 1,
                "figures": {"cpu": 95.0},
                "actor": "policy",
                "applied": True,
            },
        )
    )
    for t, src, dst, why in [
        (20.1, "new", "pending", "scale up"),
        (20.5, "pending", "booting", "process started"),
        (25.0, "booting", "ready", "health check passed"),
        (50.2, "ready", "draining", "scale in: least busy"),
        (52.0, "draining", "terminating", "no requests in flight"),
        (53.0, "terminating", "gone", "process exited"),
    ]:
        raw.append((t, "instance", {"name": "web-2", "from": src, "to": dst, "reason": why}))
    raw.append(
        (
            50.0,
            "decision",
            {
                "desired": 1,
                "direction": "down",
                "reason": "cpu 9% < target 60%",
                "policy": "target",
                "current": 2,
                "figures": {"cpu": 9.0},
                "actor": "policy",
                "applied": True,
            },
        )
    )
    raw.sort(key=lambda x: x[0])
    events = []
    for seq, (t, type_, data) in enumerate(raw, start=1):
        if type_ == "instance":
            data = {**data, "endpoint": URLS[data["name"]]}
        events.append({"seq": seq, "t": start + t, "type": type_, "data": data})
    return events


def _req(
    start: float, t: float, server: str | None, latency: float | None, phase: str, **kw: Any
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "t_send": start + t,
        "latency_s": latency,
        "status": 200,
        "error": None,
        "endpoint": URLS.get(server or "web-1", URLS["web-1"]),
        "server": server,
        "n": 30,
        "phase": phase,
    }
    rec.update(kw)
    return rec


def client_records(start: float = START) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"event": "phase", "phase": "low", "t": start}]
    out += [_req(start, 0.5 + i, "web-1", 0.05, "low") for i in range(10)]
    out.append({"event": "phase", "phase": "high", "t": start + 10.0})
    out += [_req(start, 10.0 + 0.5 * k, "web-1", 1.0 + 0.05 * k, "high") for k in range(20)]
    for k in range(12):  # 20.0 ... 25.5
        t = 20.0 + 0.5 * k
        if t == 22.0:
            out.append(_req(start, t, None, None, "high", status=None, error="timeout: no answer in 5 s"))
        elif t == 23.0:
            out.append(_req(start, t, "web-1", 0.01, "high", status=503))
        elif t == 25.5:
            out.append(_req(start, t, "web-2", 0.1, "high"))
        else:
            out.append(_req(start, t, "web-1", 2.0, "high"))
    for k in range(28):  # 26.0 ... 39.5
        out.append(_req(start, 26.0 + 0.5 * k, *(("web-2", 0.2) if k % 2 == 0 else ("web-1", 0.4)), "high"))
    out.append({"event": "phase", "phase": "idle", "t": start + 40.0})
    for k in range(10):  # 40 ... 58
        t = 40.0 + 2 * k
        server = "web-2" if k % 2 and t < 50 else "web-1"
        out.append(_req(start, t, server, 0.05, "idle"))
    return out


def write_synthetic_logs(out_dir: Path, start: float = START) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / AUTOSCALER_LOG, autoscaler_events(start))
    write_jsonl(out_dir / CLIENT_LOG, client_records(start))
