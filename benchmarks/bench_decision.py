"""Decision to added capacity serving, through the controller, for every way vmscale adds capacity:
cold boot, paused pool, saved pool, vCPU hot-add, snapshot clone (``vmscale.bench.decision``).

    .venv/bin/python benchmarks/bench_decision.py [--rounds 5] [--provider libvirt|process]
    (or: vmscale bench decision ...)

The paths run round-robin, one measurement each per round, so the host's mood hits all alike; the
host's load average is recorded before each. For libvirt run as root with the daemons up
(``VMSCALE_IMAGE_DIR`` picks the image). Prints one table of medians and writes
benchmarks/results/decision[-libvirt].json. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from vmscale.bench import decision, runner
from vmscale.bench.machine import wait_for_quiet, write_result

ROOT = Path(__file__).resolve().parents[1]
GOALS_S = {"vCPU hot-add": 0.5, "snapshot clone": 1.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--provider", choices=["libvirt", "process"], default="libvirt")
    ap.add_argument("--paths", default="", help="comma list (default: every path the provider has)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quiet-load", type=float, default=None, help="wait for this 1-minute load average")
    ap.add_argument("--quiet-wait-s", type=float, default=900.0, help="...but no longer than this")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    paths = decision.paths_for(args.provider)
    if args.paths:
        wanted = [p.strip() for p in args.paths.split(",") if p.strip()]
        if unknown := [p for p in wanted if p not in paths]:
            ap.error(f"unknown path(s) {', '.join(unknown)} for {args.provider}: {', '.join(paths)}")
        paths = wanted
    vm = args.provider == "libvirt"
    if vm:
        subprocess.run(["bash", str(ROOT / "scripts/daemons.sh")], check=True, timeout=120)
        work = Path("/var/lib/vmscale/bench") / f"decision-{uuid.uuid4().hex[:8]}"  # reachable by qemu
        work.mkdir(parents=True, mode=0o755)
    else:
        work = Path(tempfile.mkdtemp(prefix="vmscale-bench-decision-"))
    try:
        return run(args, paths, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, paths: list[str], work: Path) -> int:
    request_s = 0.4 if args.provider == "libvirt" else 0.2
    wait_for_quiet(args.quiet_load, args.quiet_wait_s)
    n, cap = runner.calibrate(work / "calibration", request_s=request_s, provider=args.provider)
    print(f"fib({n}) ≈ {1 / cap:.3f} s on one instance", flush=True)
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for rnd in range(1, args.rounds + 1):
        for path in paths:
            load = wait_for_quiet(args.quiet_load, args.quiet_wait_s)
            state = work / f"{rnd}-{path.replace(' ', '-')}"
            state.mkdir(mode=0o755)
            got = decision.measure_once(state, path, args.provider, n)
            raw[path].append({**got, "load_1m": load})
            shutil.rmtree(state, ignore_errors=True)
            how = got["placement"] or "horizontal"
            print(f"round {rnd}: {path} {got['seconds']:.3f} s ({how}, load {load})", flush=True)
        write(args, n, raw)
    table = write(args, n, raw)
    print(f"{'path':<16}{'runs':>6}{'median':>10}{'min':>10}{'max':>10}  goal")
    for path, row in table.items():
        goal = GOALS_S.get(path)
        verdict = "" if goal is None else f"<= {goal:g} s: {'met' if row['median_s'] <= goal else 'not met'}"
        figures = f"{row['median_s']:>9.3f}s{row['min_s']:>9.3f}s{row['max_s']:>9.3f}s"
        print(f"{path:<16}{row['n']:>6}{figures}  {verdict}")
    return 0


def write(args: argparse.Namespace, n: int, raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    table = {
        p: {
            "n": len(rs),
            "median_s": statistics.median(r["seconds"] for r in rs),
            "min_s": min(r["seconds"] for r in rs),
            "max_s": max(r["seconds"] for r in rs),
            "load_1m": [r["load_1m"] for r in rs],
        }
        for p, rs in raw.items()
        if rs
    }
    name = "decision" if args.provider == "process" else "decision-libvirt"
    params = {"provider": args.provider, "rounds": args.rounds, "n": n, "goals_s": GOALS_S}
    write_result(name, {"params": params, "results": table, "raw": raw}, args.out)
    return table


if __name__ == "__main__":
    raise SystemExit(main())
