"""HAProxy benchmarks: runtime-API change latency, time from add to first request, requests/s
through HAProxy versus directly, and failed requests over 20 scale-in cycles under load.

Run:  .venv/bin/python benchmarks/bench_haproxy.py [--quick]
Prints a table and writes benchmarks/results/haproxy.json. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the helpers live with the integration tests

import httpx  # noqa: E402
from tests.integration.haproxy_support import (  # noqa: E402
    Backend,
    OpenLoopLoad,
    Wrk,
    backends,
    running_haproxy,
    wait_until,
)

from vmscale.lb.base import Server  # noqa: E402
from vmscale.lb.haproxy import HaproxyLoadBalancer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "haproxy.json"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "median_ms": statistics.median(ms), "p99_ms": pct(ms, 0.99), "max_ms": max(ms)}


def runtime_api_latency(lb: HaproxyLoadBalancer, cycles: int) -> dict[str, Any]:
    """One runtime command, and a whole add / remove as vmscale issues them (each reads
    `show servers state` first, then 3 commands)."""
    server = Server("bench-1", "127.0.0.1", 9)  # never receives traffic: the backend stays unused
    add, remove, command = [], [], []
    for _ in range(cycles):
        t0 = time.perf_counter()
        lb.add(server)
        t1 = time.perf_counter()
        lb.api.expect(f"set server {lb.group}/bench-1 state drain")
        t2 = time.perf_counter()
        lb.remove("bench-1")
        t3 = time.perf_counter()
        add.append(t1 - t0)
        command.append(t2 - t1)
        remove.append(t3 - t2)
    return {"single_command": summary_ms(command), "add": summary_ms(add), "remove": summary_ms(remove)}


def add_to_first_request(lb: HaproxyLoadBalancer, backend: Backend, rounds: int) -> dict[str, Any]:
    """Empty backend → ``add`` → poll the front door until this server answers."""
    url = f"{lb.frontend_url()}/"
    times = []
    with httpx.Client(timeout=5) as client:
        for _ in range(rounds):
            lb.remove(backend.name)
            t0 = time.perf_counter()
            lb.add(backend.server)
            deadline = t0 + 10
            while time.perf_counter() < deadline:
                resp = client.get(url)
                if resp.status_code == 200:
                    break
            times.append(time.perf_counter() - t0)
    return summary_ms(times)


def throughput(lb: HaproxyLoadBalancer, backend: Backend, seconds: int) -> dict[str, Any]:
    direct = Wrk(f"{backend.url}/", duration_s=seconds, connections=16).result()
    via = Wrk(f"{lb.frontend_url()}/", duration_s=seconds, connections=16).result()
    return {
        "direct_rps": direct.requests_per_s,
        "haproxy_rps": via.requests_per_s,
        "ratio": via.requests_per_s / direct.requests_per_s if direct.requests_per_s else None,
        "direct_failed": direct.failed,
        "haproxy_failed": via.failed,
    }


def scale_in_cycles(lb: HaproxyLoadBalancer, keep: Backend, cycled: Backend, cycles: int) -> dict[str, Any]:
    url = f"{lb.frontend_url()}/fib/15"
    lb.sync({keep.name: keep.server})
    t0 = time.perf_counter()
    drain_s = []
    with OpenLoopLoad(url, 40.0, duration_s=120.0) as load:
        for _ in range(cycles):
            lb.add(cycled.server)
            time.sleep(0.3)
            d0 = time.perf_counter()
            lb.drain(cycled.name)
            wait_until(lambda: lb.stats()[cycled.name].sessions_current == 0, 20, "drain")
            drain_s.append(time.perf_counter() - d0)
            lb.remove(cycled.name)
        load.stop()
    elapsed = time.perf_counter() - t0
    res = load.result
    return {
        "cycles": cycles,
        "seconds": elapsed,
        "requests": res.sent,
        "failed": res.failed,
        "to_cycled_server": res.servers.get(cycled.name, 0),
        "drain_wait": summary_ms(drain_s),
    }


def scale_in_cycles_wrk(
    lb: HaproxyLoadBalancer, keep: Backend, cycled: Backend, cycles: int
) -> dict[str, Any]:
    """The same cycles with wrk as the only client (it reports only when its run ends)."""
    url = f"{lb.frontend_url()}/fib/15"
    lb.sync({keep.name: keep.server})
    seconds = max(5, int(cycles * 0.5) + 3)
    wrk = Wrk(url, duration_s=seconds, connections=4, delay_ms=10)
    try:
        time.sleep(1)
        for _ in range(cycles):
            lb.add(cycled.server)
            time.sleep(0.2)
            lb.drain(cycled.name)
            wait_until(lambda: lb.stats()[cycled.name].sessions_current == 0, 20, "drain")
            lb.remove(cycled.name)
    finally:
        result = wrk.result()
    return {
        "requests": result.requests,
        "failed": result.failed,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    n_api, n_first, wrk_s, cycles = (50, 5, 2, 5) if args.quick else (500, 30, 5, 20)
    out: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with running_haproxy() as lb, backends("web-1", "web-2") as (one, two):
        out["haproxy"] = lb.api.info().get("Version")
        out["runtime_api"] = runtime_api_latency(lb, n_api)
        out["add_to_first_request"] = add_to_first_request(lb, one, n_first)
        out["throughput"] = throughput(lb, one, wrk_s)
        out["scale_in_cycles"] = scale_in_cycles(lb, one, two, cycles)
        out["scale_in_cycles_wrk"] = scale_in_cycles_wrk(lb, one, two, cycles)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")

    api, first, tp = out["runtime_api"], out["add_to_first_request"], out["throughput"]
    cyc, cw = out["scale_in_cycles"], out["scale_in_cycles_wrk"]
    rows = [
        (
            "runtime API, one command",
            f"median {api['single_command']['median_ms']:.3f} ms",
            f"p99 {api['single_command']['p99_ms']:.3f} ms",
            f"n={api['single_command']['n']}",
        ),
        (
            "runtime API, add (4 cmds)",
            f"median {api['add']['median_ms']:.3f} ms",
            f"p99 {api['add']['p99_ms']:.3f} ms",
            f"n={api['add']['n']}",
        ),
        (
            "runtime API, remove (4 cmds)",
            f"median {api['remove']['median_ms']:.3f} ms",
            f"p99 {api['remove']['p99_ms']:.3f} ms",
            f"n={api['remove']['n']}",
        ),
        (
            "add → first request",
            f"median {first['median_ms']:.2f} ms",
            f"p99 {first['p99_ms']:.2f} ms",
            f"n={first['n']}",
        ),
        (
            "requests/s, GET / (wrk -c16)",
            f"direct {tp['direct_rps']:.0f}",
            f"via HAProxy {tp['haproxy_rps']:.0f}",
            f"ratio {tp['ratio']:.2f}" if tp["ratio"] else "-",
        ),
        (
            f"{cyc['cycles']} add/drain/remove cycles",
            f"httpx failed {cyc['failed']}/{cyc['requests']}",
            f"wrk failed {cw['failed']}/{cw['requests']}",
            f"drain median {cyc['drain_wait']['median_ms']:.0f} ms",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for row in rows:
        print(f"{row[0]:<{width}}  " + "  ".join(f"{c:<22}" for c in row[1:]))
    print(f"\nwritten: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
