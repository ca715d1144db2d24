"""Takeover time: from kill -9 of the leading `vmscale up` to the standby's first tick as leader.

    .venv/bin/python benchmarks/bench_takeover.py [--runs 3] [--test-runs 5] [--local-runs 3]

Two real controllers (process provider, one instance, one SQLite store in a temp folder) on loopback.
Each runs in a UTS namespace with a host name of its own (root only, ``unshare --uts``): to each other
they are on two machines, so the standby cannot see the leader's process die and takes over only
when the lease expires, as across hosts. Measured with Kubernetes' default lease settings (15 s
lease, 10 s renew deadline, 2 s retry; about 15 s a run) and with the test suites' (2 / 1.5 /
0.25 s), and once more with both on one host name, where the standby sees the holder's process gone
and takes over at its next retry without waiting for the expiry. Medians over the runs; writes
benchmarks/results/takeover.json.

The takeover includes: the lease running out (up to ``duration_s`` after the leader's last renewal,
which came up to ``retry_s`` before the kill), the standby's next try (up to ``retry_s``), restart
recovery from the store and the provider, and the first tick.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the controller-process drivers live with the tests (tests/support)

from tests.support.controller_pair import ControllerPair  # noqa: E402

from vmscale.bench.machine import write_result  # noqa: E402
from vmscale.ports import free_block  # noqa: E402

SETTINGS = {"default": (15.0, 10.0, 2.0), "test": (2.0, 1.5, 0.25)}


def config(tmp: Path, lease: tuple[float, float, float]) -> Path:
    duration, deadline, retry = lease
    base = free_block(3, start=24000 + uuid.uuid4().int % 200 * 50)
    path = tmp / "vmscale.toml"
    path.write_text(
        f"""
[group]
name = "tk{uuid.uuid4().hex[:6]}"
min = 1
max = 1
interval_s = 1.0

[provider.process]
base_port = {base}
cpu_limit = "workers"

[state]
dir = "{tmp / "state"}"

[state.lease]
duration_s = {duration}
renew_deadline_s = {deadline}
retry_s = {retry}
"""
    )
    return path


def takeovers(lease: tuple[float, float, float], runs: int, *, machines: bool) -> list[float]:
    out: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vmscale-bench-takeover-") as tmp:
        pair = ControllerPair(config(Path(tmp), lease), Path(tmp), cwd=REPO, machines=machines)
        try:
            pair.start()
            for run in range(runs):
                time.sleep(lease[2] * (run % 3) / 3)  # land the kill at different points of a retry period
                killed, _, took = pair.fail_over(lease[0] + 60)
                out.append(took)
                print(f"  run {run + 1}: {out[-1]:.2f} s", flush=True)
                pair.restart(killed)
        finally:
            pair.stop()
    return out


def summary(xs: list[float]) -> dict[str, Any]:
    return {
        "runs": len(xs),
        "median_s": round(statistics.median(xs), 2),
        "min_s": round(min(xs), 2),
        "max_s": round(max(xs), 2),
        "all_s": [round(x, 2) for x in xs],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs with the default settings (~15 s each)")
    ap.add_argument("--test-runs", type=int, default=5, help="runs with the test settings")
    ap.add_argument("--local-runs", type=int, default=3, help="runs on one host name (default settings)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    results: dict[str, Any] = {}
    plan = [
        ("default, two machines", SETTINGS["default"], args.runs, True),
        ("test, two machines", SETTINGS["test"], args.test_runs, True),
        ("default, one host", SETTINGS["default"], args.local_runs, False),
    ]
    for label, lease, runs, machines in plan:
        duration, deadline, retry = lease
        print(f"{label}: lease {duration:g} s, renew deadline {deadline:g} s, retry {retry:g} s", flush=True)
        results[label] = {
            "lease": dict(zip(("duration_s", "renew_deadline_s", "retry_s"), lease, strict=True)),
            **summary(takeovers(lease, runs, machines=machines)),
        }
    print(f"\n{'case':<24} {'median':>8} {'min':>7} {'max':>7}  runs")
    for label, r in results.items():
        print(f"{label:<24} {r['median_s']:>7.2f}s {r['min_s']:>6.2f}s {r['max_s']:>6.2f}s  {r['runs']}")
    path = write_result("takeover", {"results": results}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
