"""How fast is the what-if simulator? A 24 h trace at 1 s for a 1,000-instance group.

    .venv/bin/python benchmarks/bench_simulate.py [--runs 5]

Prints a table (median wall time of several runs per policy set, steps per second) and writes
benchmarks/results/simulate.json. Wall time is measured here, never asserted in a test.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

from vmscale.config.policy import (
    SchedulePolicyConfig,
    StepPolicyConfig,
    TargetPolicyConfig,
    ThresholdPolicyConfig,
)
from vmscale.policy import build_policy_set
from vmscale.simulate import ORIGINAL_RULE, SimParams, Trace, simulate, summarise

DAY_S = 86_400
MAX_COUNT = 1_000


def day_trace() -> Trace:
    """Night ~100 instances of demand, afternoon ~850, with minute-scale wobble (deterministic)."""
    ts = tuple(float(i) for i in range(DAY_S))
    demand = tuple(
        100
        + 750 * (1 - math.cos(2 * math.pi * i / DAY_S)) / 2
        + 40 * math.sin(i / 97)
        + 25 * math.sin(i / 13)
        for i in range(DAY_S)
    )
    return Trace(ts, demand)


SETS = {
    "original": [ORIGINAL_RULE],
    "target": [TargetPolicyConfig()],
    "threshold-band": [ThresholdPolicyConfig(upper=80, lower=40, step=20)],
    "step": [StepPolicyConfig(lower=30)],
    "target+step+schedule": [
        TargetPolicyConfig(),
        StepPolicyConfig(lower=30),
        SchedulePolicyConfig(entries=[{"cron": "0-59 9-17 * * 1-5", "min": 300}]),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per policy set (the median is reported)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "simulate.json")
    args = parser.parse_args()
    trace = day_trace()
    params = SimParams(boot_s=30, initial=100)
    rows = []
    print(f"24 h at 1 s ({DAY_S} steps), group max {MAX_COUNT}, median of {args.runs} runs")
    head = ("policy set", "median s", "min s", "steps/s", "events", "peak", "unserved s")
    print(f"{head[0]:<22} {head[1]:>9} {head[2]:>7} {head[3]:>9} {head[4]:>7} {head[5]:>5} {head[6]:>11}")
    for name, cfgs in SETS.items():
        ps = build_policy_set(cfgs, min_count=1, max_count=MAX_COUNT)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            run = simulate(ps, trace, params, name=name)
            times.append(time.perf_counter() - t0)
        s = summarise(run)
        med = statistics.median(times)
        rows.append(
            {
                "policy_set": name,
                "median_s": med,
                "min_s": min(times),
                "runs": args.runs,
                "steps_per_s": DAY_S / med,
                "scale_events": s.scale_events,
                "peak_instances": s.peak_instances,
                "unserved_seconds": s.unserved_seconds,
                "instance_seconds": s.instance_seconds,
            }
        )
        print(
            f"{name:<22} {med:>9.2f} {min(times):>7.2f} {DAY_S / med:>9.0f} {s.scale_events:>7} "
            f"{s.peak_instances:>5} {s.unserved_seconds:>11.0f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "simulate",
                "steps": DAY_S,
                "max_count": MAX_COUNT,
                "boot_s": params.boot_s,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
