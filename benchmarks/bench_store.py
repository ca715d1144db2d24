"""What the state store costs a controller: write latency per tick, SQLite vs PostgreSQL, and how
many ticks per second a store sustains for 100 groups of 10 instances.

    .venv/bin/python benchmarks/bench_store.py [--runs 5] [--ticks 200] [--pg-url URL]

Without ``--pg-url`` a throw-away PostgreSQL server is started for the run (Debian's binaries,
``tests/support/postgres.py``; default durability: every commit is flushed to its WAL) on a Unix
socket. Every write goes through ``store.fenced(lease)``, as a leader's writes do, so the lease
check is included. Prints a table and writes benchmarks/results/store.json.

Tick shapes (each write its own transaction, as the controller makes them today):
  steady   renew the lease, save the group (policy state moved)                  2 transactions
  scaling  renew, append a decision, save the group, two instance transitions    5 transactions
  fleet    renew once, then for each of 100 groups: save the group, one instance transition,
           read the group's 10 instances                                          1 + 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the PostgreSQL server helper lives with the tests (tests/support)

from vmscale.bench.machine import write_result  # noqa: E402
from vmscale.store import InstanceRow, Lease, SqlStore, open_store  # noqa: E402

GROUPS, PER_GROUP = 100, 10


@contextmanager
def postgres(url: str) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.support.postgres import PostgresServer

    with PostgresServer.started() as server:
        yield server.create_database()


def steady_tick(store: SqlStore, lease: Lease, i: int) -> Lease:
    lease = store.leases("bench").renew(lease, 15.0)
    store.fenced(lease).save_group("web", 3, False, {"cpu": {"window": [i, i + 1, i + 2]}}, float(i))
    return lease


def scaling_tick(store: SqlStore, lease: Lease, i: int) -> Lease:
    lease = store.leases("bench").renew(lease, 15.0)
    view = store.fenced(lease)
    view.append_decision("web", float(i), "autoscaler", {"desired": 4, "reason": "cpu 92% > 60%", "n": i})
    view.save_group("web", 4, False, {"cpu": {"window": [i]}}, float(i))
    row = InstanceRow(f"web-{i}", "web", i, "pending")
    view.put_instance(row, float(i), src="(none)", reason="launch requested")
    row.state = "gone"
    view.put_instance(row, float(i), src="terminating", reason="scale-in")
    return lease


def fleet_setup(store: SqlStore, lease: Lease) -> None:
    view = store.fenced(lease)
    for g in range(GROUPS):
        view.save_group(f"g{g}", PER_GROUP, False, {}, 0.0)
        for i in range(PER_GROUP):
            view.put_instance(
                InstanceRow(f"g{g}-{i}", f"g{g}", i, "ready"), 0.0, src="booting", reason="ready"
            )


def fleet_tick(store: SqlStore, lease: Lease, i: int) -> Lease:
    lease = store.leases("bench").renew(lease, 15.0)
    view = store.fenced(lease)
    for g in range(GROUPS):
        view.save_group(f"g{g}", PER_GROUP, False, {"t": i}, float(i))
        state = "draining" if i % 2 else "ready"
        view.put_instance(
            InstanceRow(f"g{g}-{i % PER_GROUP}", f"g{g}", i % PER_GROUP, state), float(i), src="x"
        )
        assert len(view.instances(f"g{g}")) == PER_GROUP
    return lease


def measure(
    store: SqlStore, tick: Callable[[SqlStore, Lease, int], Lease], ticks: int, runs: int
) -> dict[str, Any]:
    lease = store.leases("bench").try_acquire("bench", 15.0)
    assert lease is not None
    run_medians, run_p95s, rates = [], [], []
    n = 0
    for _ in range(runs):
        times = []
        started = time.perf_counter()
        for _ in range(ticks):
            t0 = time.perf_counter()
            lease = tick(store, lease, n)
            times.append(time.perf_counter() - t0)
            n += 1
        rates.append(ticks / (time.perf_counter() - started))
        times.sort()
        run_medians.append(statistics.median(times))
        run_p95s.append(times[int(0.95 * (len(times) - 1))])
    store.leases("bench").release(lease)
    return {
        "median_ms": statistics.median(run_medians) * 1000,
        "p95_ms": statistics.median(run_p95s) * 1000,
        "ticks_per_s": statistics.median(rates),
        "runs": runs,
        "ticks_per_run": ticks,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (medians are reported)")
    ap.add_argument("--ticks", type=int, default=200, help="ticks per run (steady and scaling)")
    ap.add_argument("--fleet-ticks", type=int, default=10, help="ticks per run for 100 groups x 10")
    ap.add_argument("--pg-url", default="", help="an existing PostgreSQL database (default: start one)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vmscale-bench-store-") as tmp, postgres(args.pg_url) as pg_url:
        for backend, url in (("sqlite", f"sqlite://{tmp}/state.db"), ("postgres", pg_url)):
            store = open_store(url)
            try:
                results[backend] = {
                    "steady": measure(store, steady_tick, args.ticks, args.runs),
                    "scaling": measure(store, scaling_tick, args.ticks, args.runs),
                }
                lease = store.leases("bench").try_acquire("bench", 15.0)
                assert lease is not None
                fleet_setup(store, lease)
                store.leases("bench").release(lease)
                results[backend]["fleet"] = measure(store, fleet_tick, args.fleet_ticks, args.runs)
            finally:
                store.close()

    print(f"median of {args.runs} runs; every write fenced by the lease")
    print(f"{'tick':<10} {'backend':<9} {'median ms':>10} {'p95 ms':>8} {'ticks/s':>9}")
    for shape in ("steady", "scaling", "fleet"):
        for backend in ("sqlite", "postgres"):
            r = results[backend][shape]
            figures = f"{r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['ticks_per_s']:>9.1f}"
            print(f"{shape:<10} {backend:<9} {figures}")
    path = write_result(
        "store",
        {"groups": GROUPS, "instances_per_group": PER_GROUP, "results": results},
        args.out,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
