"""The original student experiment, three ways, interleaved in one invocation on one machine.

    .venv/bin/python benchmarks/bench_scenario.py [--rounds 3] [--slo-s 2] [--quick]
    (or: vmscale bench scenario ...)

Variants, each a real group (process provider, backends with 1-CPU quotas, load client on the
event stream), run round-robin so that machine noise hits all three alike:

* fixed     — one instance, no autoscaling (doing nothing);
* original  — the student system's rule: CPU above 75 % for 3 one-second samples, scale 1 -> 2, never back;
* vmscale   — vmscale's default policy (target tracking on CPU, HPA semantics), max 4.

Load: low (light requests), then high (open loop at `--overload` x one instance's measured
capacity), then idle. Reports p50/p95/p99, seconds over the SLO, failed requests, instance-seconds,
and the ratios the goals are stated in; medians over rounds. Writes benchmarks/results/scenario.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vmscale.bench import measure, runner
from vmscale.bench.machine import write_result
from vmscale.workload.load_plan import Phase

VARIANTS: dict[str, dict[str, Any]] = {
    "fixed": {"policies": [], "min_count": 1, "max_count": 1},
    "original": {
        "policies": [
            {
                "kind": "threshold",
                "name": "original",
                "metric": "cpu",
                "upper": 75,
                "samples_up": 3,
                "step": 1,
            }
        ],
        "min_count": 1,
        "max_count": 2,
    },
    "vmscale": {"policies": [], "min_count": 1, "max_count": 4},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slo-s", type=float, default=2.0, help="latency SLO in seconds (default 2)")
    ap.add_argument(
        "--overload", type=float, default=1.3, help="high load in units of one instance's capacity"
    )
    ap.add_argument("--quick", action="store_true", help="short phases (for a smoke run, not for figures)")
    ap.add_argument(
        "--out", type=Path, default=None, help="result JSON (default benchmarks/results/scenario.json)"
    )
    args = ap.parse_args(argv)
    console = Console()
    low_s, high_s, idle_s = (5, 20, 10) if args.quick else (15, 60, 30)
    work = Path(tempfile.mkdtemp(prefix="vmscale-bench-scenario-"))
    console.print("calibrating the heavy request on one instance ...")
    n, capacity = runner.calibrate(work / "calibration")
    rate = round(args.overload * capacity, 2)
    console.print(
        f"fib({n}) ≈ {1 / capacity:.3f} s; one instance serves ≈ {capacity:.2f} req/s; high = {rate} req/s"
    )
    phases = [
        Phase(mode="low", duration_s=low_s, rate=2.0, name="low"),
        Phase(mode="step", duration_s=high_s, rate=rate, n=n, name="high"),
        Phase(mode="idle", duration_s=idle_s, name="idle"),
    ]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for rnd in range(args.rounds):
        for name, spec in VARIANTS.items():
            console.print(f"round {rnd + 1}/{args.rounds}: {name}")
            out = work / f"{rnd}-{name}"
            cfg = runner.group_config(out / "state", **spec)
            res = runner.run(cfg, phases, out)
            runs[name].append(
                measure.figures(res.records, res.events, res.load_start, res.load_end, args.slo_s)
            )
    med = {v: {k: _median([r[k] for r in rs]) for k in rs[0]} for v, rs in runs.items()}
    ratios = {
        "slo_vmscale_over_fixed": _ratio(
            med["vmscale"]["seconds_over_slo"], med["fixed"]["seconds_over_slo"]
        ),
        "slo_vmscale_over_original": _ratio(
            med["vmscale"]["seconds_over_slo"], med["original"]["seconds_over_slo"]
        ),
        "cost_vmscale_over_original": _ratio(
            med["vmscale"]["instance_seconds"], med["original"]["instance_seconds"]
        ),
    }
    goals = {
        "slo <= 1/5 of fixed": ratios["slo_vmscale_over_fixed"] is not None
        and ratios["slo_vmscale_over_fixed"] <= 0.2,
        "slo <= 1/2 of original": med["vmscale"]["seconds_over_slo"]
        <= 0.5 * med["original"]["seconds_over_slo"],
        "cost <= 1.25x original": (ratios["cost_vmscale_over_original"] or 0) <= 1.25,
    }
    table = Table(
        title=f"scenario: low {low_s}s, high {high_s}s at {args.overload}x, idle {idle_s}s; "
        f"SLO {args.slo_s}s; medians of {args.rounds} round(s)"
    )
    cols = [
        "p50_s",
        "p95_s",
        "p99_s",
        "seconds_over_slo",
        "failed",
        "instance_seconds",
        "peak_instances",
        "reversals",
    ]
    table.add_column("variant")
    for c in cols:
        table.add_column(c, justify="right")
    for v, f in med.items():
        table.add_row(v, *[_fmt(f[c]) for c in cols])
    console.print(table)
    console.print({**ratios, "goals": goals})
    path = write_result(
        "scenario",
        {
            "params": {
                "rounds": args.rounds,
                "slo_s": args.slo_s,
                "overload": args.overload,
                "n": n,
                "capacity_rps": round(capacity, 3),
                "phases_s": [low_s, high_s, idle_s],
            },
            "runs": runs,
            "medians": med,
            "ratios": ratios,
            "goals": goals,
        },
        args.out,
    )
    console.print(f"wrote {path}")
    return 0


def _median(xs: list[Any]) -> Any:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b == 0:
        return 0.0 if a == 0 else None
    return round(a / b, 3)


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


if __name__ == "__main__":
    raise SystemExit(main())
