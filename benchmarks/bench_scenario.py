"""The scenario benchmark: the original rule, the Kubernetes HPA's defaults and vmscale's variants,
under three load shapes, interleaved in one invocation on one machine.

    .venv/bin/python benchmarks/bench_scenario.py [--rounds 3] [--slo-s 0.5 --slo-s 2] [--quick]
        [--provider process|libvirt] [--shapes step,ramp,bursts] [--variants original,hpa,vmscale,...]
    (or: vmscale bench scenario ...)

Contenders and shapes are described in ``vmscale.bench.scenario``. Each run is a real group (backend
processes with CPU quotas, or TCG guests) and the load client follows the event stream; contenders
run round-robin, in a rotated order each round, so machine noise hits all alike. Reports p50/p95,
seconds over each SLO, failed requests, instance-seconds, vCPU-seconds (what resized instances
cost), parked-seconds (a warm pool's), how soon the first added capacity served, flapping, and
the host's load average before each run; medians over rounds; then the goals per shape
(``scenario.judge``). Writes benchmarks/results/scenario.json (scenario-libvirt.json for
--provider libvirt), after every run, so a long invocation that is cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vmscale.bench import measure, runner, scenario
from vmscale.bench.machine import wait_for_quiet, write_result

# The libvirt provider keeps overlays in the state folder, which QEMU (another user) must reach.
LIBVIRT_WORK = Path("/var/lib/vmscale/bench")
COLUMNS = (
    "p50_s",
    "p95_s",
    "failed",
    "instance_seconds",
    "vcpu_seconds",
    "parked_seconds",
    "peak_instances",
    "peak_vcpus",
    "first_added_s",
    "reversals",
    "load_1m",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slo-s", type=float, action="append", default=None, help="repeat; default 0.5 and 2")
    ap.add_argument("--overload", type=float, default=1.3, help="step: high load in units of one instance")
    ap.add_argument("--ramp-to", type=float, default=1.6, help="ramp: the rate it ends at, in instances")
    ap.add_argument("--burst", type=float, default=1.6, help="bursts: their rate, in instances")
    ap.add_argument("--quick", action="store_true", help="short phases (for a smoke run, not for figures)")
    ap.add_argument("--idle-s", type=int, default=None, help="length of the closing idle phase")
    ap.add_argument("--provider", choices=["process", "libvirt"], default="process")
    ap.add_argument("--shapes", default=",".join(scenario.SHAPES), help="comma list of step, ramp, bursts")
    ap.add_argument(
        "--variants",
        default=",".join(scenario.DEFAULT_CONTENDERS),
        help=f"comma list of {', '.join(scenario.ALL_CONTENDERS)} (clone: libvirt only)",
    )
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/...)")
    ap.add_argument(
        "--quiet-load",
        type=float,
        default=None,
        help="before calibrating and before each run, wait (up to --quiet-wait-s) until the 1-minute "
        "load average is at most this (a shared machine: measure when the others are quiet)",
    )
    ap.add_argument("--quiet-wait-s", type=float, default=900.0)
    args = ap.parse_args(argv)
    args.slos = sorted(set(args.slo_s or [0.5, 2.0]))
    if any(x <= 0 for x in args.slos):
        ap.error("--slo-s must be positive")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.idle_s is not None and args.idle_s < 0:
        ap.error("--idle-s must be 0 or more")
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if unknown := [s for s in args.shapes if s not in scenario.SHAPES]:
        ap.error(f"unknown shape(s) {', '.join(unknown)}: choose from {', '.join(scenario.SHAPES)}")
    available = scenario.contenders(args.provider, os.cpu_count() or 1)
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [v for v in wanted if v not in scenario.ALL_CONTENDERS]:
        ap.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(scenario.ALL_CONTENDERS)}")
    args.contenders = [available[v] for v in wanted if v in available]  # clone only where it exists
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=180)  # the wide tables stay readable in CI logs and pipes
    vm = args.provider == "libvirt"
    if vm:
        LIBVIRT_WORK.mkdir(parents=True, exist_ok=True)
        work = LIBVIRT_WORK / f"scenario-{uuid.uuid4().hex[:8]}"
        work.mkdir(mode=0o755)
    else:
        work = Path(tempfile.mkdtemp(prefix="vmscale-bench-scenario-"))
    try:
        return _run(args, console, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # overlays and goldens are large; the JSON has the figures


def _run(args: argparse.Namespace, console: Console, work: Path) -> int:
    lengths = scenario.LENGTHS[(args.provider, args.quick)]
    if args.idle_s is not None:
        lengths = type(lengths)(**{**vars(lengths), "idle_s": args.idle_s})
    load = wait_for_quiet(args.quiet_load, args.quiet_wait_s)
    console.print(f"calibrating the heavy request on one instance ({args.provider}, load {load}) ...")
    n, cap = runner.calibrate(
        work / "calibration", request_s=0.2 if args.provider == "process" else 0.4, provider=args.provider
    )
    console.print(f"fib({n}) ≈ {1 / cap:.3f} s; one instance serves ≈ {cap:.2f} req/s")
    shapes = {
        s: scenario.phases(s, lengths, n, cap, overload=args.overload, ramp_to=args.ramp_to, burst=args.burst)
        for s in args.shapes
    }
    names = [c.name for c in args.contenders]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {v: [] for v in names} for s in shapes}
    params = {
        "provider": args.provider,
        "rounds": args.rounds,
        "slo_s": args.slos,
        "n": n,
        "capacity_rps": round(cap, 3),
        "overload": args.overload,
        "ramp_to": args.ramp_to,
        "burst": args.burst,
        "lengths_s": vars(lengths),
        "calibrated_at_load_1m": load,
        "quiet_load": args.quiet_load,
        "contenders": {c.name: c.config_args() for c in args.contenders},
    }
    for rnd in range(args.rounds):
        order = args.contenders[rnd % len(names) :] + args.contenders[: rnd % len(names)]
        for shape, phases in shapes.items():
            for contender in order:
                console.print(f"round {rnd + 1}/{args.rounds}, {shape}: {contender.name}")
                fig = one_run(args, work / f"{rnd}-{shape}-{contender.name}", contender, phases)
                runs[shape][contender.name].append(fig)
                write(args, params, runs)
    medians, judged = write(args, params, runs)
    for shape in shapes:
        show(
            console,
            f"{shape} ({args.provider}); medians of {args.rounds} round(s)",
            medians[shape],
            args.slos,
        )
        console.print({key: verdict for key, verdict in judged[shape].items()})
    console.print("wrote", args.out or "benchmarks/results/")
    return 0


def one_run(
    args: argparse.Namespace, out: Path, contender: scenario.Contender, phases: list[Any]
) -> dict[str, Any]:
    load = wait_for_quiet(args.quiet_load, args.quiet_wait_s)
    cfg = runner.group_config(out / "state", provider=args.provider, **contender.config_args())
    res = runner.run(cfg, phases, out)
    fig = measure.figures(res.records, res.events, res.load_start, res.load_end, args.slos[0])
    del fig["seconds_over_slo"]
    for slo in args.slos:
        fig[scenario.slo_key(slo)] = measure.seconds_over_slo(res.records, slo, res.load_start)
    fig["load_1m"] = load
    shutil.rmtree(out / "state", ignore_errors=True)
    return fig


def write(
    args: argparse.Namespace, params: dict[str, Any], runs: dict[str, dict[str, list[dict[str, Any]]]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    medians = {
        shape: {v: {k: _median([r[k] for r in rs]) for k in rs[0]} for v, rs in by_v.items() if rs}
        for shape, by_v in runs.items()
    }
    own = {c.name for c in args.contenders if c.vmscale}
    judged = {
        shape: {scenario.slo_key(slo): scenario.judge(med, slo, own & set(med)) for slo in args.slos}
        for shape, med in medians.items()
    }
    name = "scenario" if args.provider == "process" else "scenario-libvirt"
    write_result(name, {"params": params, "runs": runs, "medians": medians, "judged": judged}, args.out)
    return medians, judged


def show(console: Console, title: str, med: dict[str, dict[str, Any]], slos: list[float]) -> None:
    table = Table(title=title)
    cols = [*COLUMNS[:2], *[scenario.slo_key(x) for x in slos], *COLUMNS[2:]]
    table.add_column("variant")
    for c in cols:
        table.add_column(c, justify="right")
    for v, f in med.items():
        table.add_row(v, *[_fmt(f.get(c)) for c in cols])
    console.print(table)


def _median(xs: list[Any]) -> Any:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


if __name__ == "__main__":
    raise SystemExit(main())
