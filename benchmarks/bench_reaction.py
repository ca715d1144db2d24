"""How fast does vmscale notice a load step, and does it stay still on a steady load?

    .venv/bin/python benchmarks/bench_reaction.py [--runs 5] [--steady-s 60]
    (or: vmscale bench reaction ...)

For vmscale's default policy and for the original student rule (75 % for 3 one-second samples),
each run starts a real group (process provider, 1 s sampling) at one instance, sends a light load,
then steps to `--overload` x one instance's measured capacity; the figure is the time from the
step (the load client's phase marker) to the first applied scale-up decision. A steady run at
half of one instance's capacity then counts scale events and direction reversals (flapping).
Writes benchmarks/results/reaction.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vmscale.bench import measure, runner
from vmscale.bench.machine import write_result
from vmscale.percentile import percentile
from vmscale.workload.load_plan import Phase

POLICIES: dict[str, list[dict[str, Any]]] = {
    "vmscale": [],  # the default policy
    "original": [{"kind": "threshold", "name": "original", "metric": "cpu", "upper": 75, "samples_up": 3}],
}


def reaction_time(out: Path) -> float | None:
    client = [json.loads(x) for x in (out / "client.jsonl").read_text().splitlines() if x.strip()]
    step = next((r["t"] for r in client if r.get("event") == "phase" and r["phase"] == "high"), None)
    events = [json.loads(x) for x in (out / "autoscaler.jsonl").read_text().splitlines() if x.strip()]
    up = next(
        (
            e["t"]
            for e in events
            if e["type"] == "decision"
            and e["data"].get("direction") == "up"
            and e["data"].get("applied")
            and step is not None
            and e["t"] >= step
        ),
        None,
    )
    return None if step is None or up is None else up - step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--overload", type=float, default=1.5)
    ap.add_argument("--steady-s", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console(width=160)  # the wide tables stay readable in CI logs and pipes
    work = Path(tempfile.mkdtemp(prefix="vmscale-bench-reaction-"))
    n, capacity = runner.calibrate(work / "calibration")
    console.print(f"fib({n}) ≈ {1 / capacity:.3f} s per request; one instance ≈ {capacity:.2f} req/s")
    step = [
        Phase(mode="low", duration_s=6, rate=2.0, name="low"),
        Phase(mode="step", duration_s=12, rate=round(args.overload * capacity, 2), n=n, name="high"),
    ]
    steady = [Phase(mode="step", duration_s=args.steady_s, rate=round(0.5 * capacity, 2), n=n, name="steady")]
    results: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float | None]] = {p: [] for p in POLICIES}
    for i in range(args.runs):
        for name, policies in POLICIES.items():  # interleaved, so noise hits both alike
            console.print(f"run {i + 1}/{args.runs}: {name}")
            out = work / f"{name}-{i}"
            cfg = runner.group_config(out / "state", policies=policies, min_count=1, max_count=4)
            runner.run(cfg, step, out)
            times[name].append(reaction_time(out))
    for name, policies in POLICIES.items():
        console.print(f"steady load: {name}")
        out = work / f"{name}-steady"
        cfg = runner.group_config(out / "state", policies=policies, min_count=1, max_count=4)
        res = runner.run(cfg, steady, out)
        n_scale, reversals, peak = measure.scale_events(res.events)
        measured = [t for t in times[name] if t is not None]
        results[name] = {
            "reaction_s": times[name],
            "p50_s": round(statistics.median(measured), 3) if measured else None,
            "p95_s": round(percentile(measured, 95) or 0, 3) if measured else None,
            "missed": sum(1 for t in times[name] if t is None),
            "steady_scale_events": n_scale,
            "steady_reversals": reversals,
            "steady_peak": peak,
        }
    table = Table(
        title=f"reaction to a step to {args.overload}x one instance (1 s sampling, {args.runs} runs); "
        f"steady load 0.5x for {args.steady_s:.0f} s"
    )
    for col in ("policy", "p50_s", "p95_s", "missed", "steady_scale_events", "steady_reversals"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            *[str(r[c]) for c in ("p50_s", "p95_s", "missed", "steady_scale_events", "steady_reversals")],
        )
    console.print(table)
    path = write_result(
        "reaction",
        {
            "params": {
                "runs": args.runs,
                "overload": args.overload,
                "n": n,
                "capacity_rps": round(capacity, 3),
                "steady_s": args.steady_s,
            },
            "results": results,
        },
        args.out,
    )
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
