"""Start-up time of `vmscale up`: from exec to the control API answering (which it does only after
restart reconciliation), for a one-group process config with nothing to adopt.

    .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--src PATH]

``--src`` runs another checkout's ``src`` (e.g. an older commit in a git worktree) with this
interpreter, so two versions can be compared on the same machine, interleaved run by run. Each run
is stopped with SIGTERM after its API answered. Traffic stays on 127.0.0.1. Writes
benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from vmscale.bench.machine import write_result
from vmscale.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60.0


def one_start(src: Path, work: Path, n: int) -> float:
    """Seconds from exec to ``/healthz`` answering 200, for one fresh state folder."""
    port, base = free_port(), free_port()
    cfg = work / f"startup-{n}.toml"
    cfg.write_text(
        f'[group]\nname = "su{os.getpid()}x{n}"\nmin = 1\nmax = 2\n'
        f'[api]\nbind = "127.0.0.1:{port}"\n[state]\ndir = "{work}/state-{n}"\n'
        f"[provider.process]\nbase_port = {base}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmscale", "up", "-c", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / f"startup-{n}.log").open("w"),
    )
    try:
        while time.monotonic() - started < TIMEOUT_S:
            if proc.poll() is not None:
                raise RuntimeError(f"vmscale up exited {proc.returncode}; see {work}/startup-{n}.log")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"no API within {TIMEOUT_S:g} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--src", type=Path, action="append", default=None, help="repeat to compare checkouts")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    sources = [s.resolve() for s in (args.src or [ROOT / "src"])]
    times: dict[str, list[float]] = {str(s): [] for s in sources}
    with tempfile.TemporaryDirectory(prefix="vmscale-startup-") as tmp:
        for n in range(args.runs):
            for s in sources:  # interleaved: the machine's mood hits every version alike
                times[str(s)].append(one_start(s, Path(tmp), n * len(sources) + sources.index(s)))
    results: dict[str, Any] = {}
    for src, xs in times.items():
        all_s = [round(x, 3) for x in xs]
        results[src] = {"runs": len(xs), "median_s": round(statistics.median(xs), 3), "all_s": all_s}
        print(f"{src}: exec -> API answering, median {statistics.median(xs):.2f} s of {len(xs)} {all_s}")
    write_result("startup", {"results": results}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
