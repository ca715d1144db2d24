"""Live migration of a serving TCG guest between two namespaced libvirt hosts, and drain time.

    .venv/bin/python benchmarks/bench_migration.py [--runs 3] [--drain 1,2,4]

Brings up two hosts (tests/support/netns_hosts.py: each its own network + mount namespace and
libvirtd), runs vmscale, HAProxy and the load client in the topology's ctl namespace, and measures:

* **migration of a serving guest** (``--runs`` times, back and forth between the hosts) while a
  bounded open-loop load (8 req/s of fib(18)) goes through HAProxy: libvirt's own figures from the
  completed job (total time, downtime, memory and disk bytes), vmscale's wall time, and the client's
  view: failed requests, the worst latency of requests sent during the migration, and the longest
  gap between two answers during the migration against the same figure over the 10 s before it;
* **drain time** of a host holding 1, 2, 4 guests (sequential migrations to the other host).

Writes benchmarks/results/migration.json. Needs root (namespaces) and the guest image
(``VMSCALE_IMAGE_DIR``, default /var/lib/vmscale/image).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the topology helpers live with the tests

from tests.support import cluster_tasks as tasks  # noqa: E402
from tests.support.ctl import CtlWorker  # noqa: E402
from tests.support.netns_hosts import Topology, netns_hosts  # noqa: E402

from vmscale.bench.machine import write_result  # noqa: E402
from vmscale.providers.libvirt.image import build_image  # noqa: E402

IMAGE_DIR = Path(os.environ.get("VMSCALE_IMAGE_DIR", "/var/lib/vmscale/image"))


def gaps(records: list[dict[str, Any]], start: float, end: float) -> float:
    """Longest time without an answer arriving within [start, end] (answers at t_send + latency)."""
    answers = sorted(
        r["t_send"] + r["latency_s"] for r in records if r.get("latency_s") is not None and r["status"] == 200
    )
    inside = [start] + [a for a in answers if start <= a <= end] + [end]
    return max(b - a for a, b in itertools.pairwise(inside))


def one_migration(
    ctl: CtlWorker, topo: Topology, name: str, dst: str, front: str, tmp: Path, run: int
) -> dict[str, Any]:
    log = tmp / f"client-{run}.jsonl"
    load = subprocess.Popen(
        topo.ctl_argv(
            sys.executable, "-m", "vmscale", "load", "--mode", "step", "--rate", "8", "--duration", "30",
            "--n", "18", "--timeout", "20", "--url", front, "--json", "--log", str(log), "--seed", str(run),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(12)  # a benchmark may pace itself: 10 s of undisturbed serving as the baseline
    t0 = time.time()
    moved = ctl.run(tasks.migrate, name, dst, timeout_s=300)
    t1 = time.time()
    out, _err = load.communicate(timeout=120)
    summary = json.loads(out)
    records = [json.loads(x) for x in log.read_text().splitlines() if '"t_send"' in x]
    during = [r for r in records if t0 <= r["t_send"] <= t1]
    before = [r for r in records if t0 - 10 <= r["t_send"] < t0]
    return {
        "to": dst,
        "wall_s": round(t1 - t0, 3),
        "libvirt_total_ms": int(moved["migration_total_ms"]),
        "libvirt_downtime_ms": int(moved["migration_downtime_ms"]),
        "memory_mib": round(int(moved["migration_memory_bytes"]) / 2**20, 1),
        "disk_mib_libvirt": round(int(moved.get("migration_disk_bytes", 0)) / 2**20, 1),
        "overlay_mib": round(int(moved["migration_overlay_bytes"]) / 2**20, 1),
        "requests": summary["count"],
        "failed": summary["errors"],
        "max_latency_during_s": round(max((r["latency_s"] or 0) for r in during), 3) if during else None,
        "max_latency_before_s": round(max((r["latency_s"] or 0) for r in before), 3) if before else None,
        "longest_answer_gap_during_s": round(gaps(records, t0, t1), 3),
        "longest_answer_gap_before_s": round(gaps(records, t0 - 10, t0), 3),
    }


def migrations(ctl: CtlWorker, topo: Topology, runs: int, tmp: Path) -> list[dict[str, Any]]:
    inst = ctl.run(tasks.launch, 1, "h1", timeout_s=180)
    ctl.run(tasks.wait_healthy, inst["endpoint"], 150.0, timeout_s=170)
    name = inst["name"]
    front = ctl.run(tasks.start_haproxy, str(tmp / "haproxy"), 18080, {name: inst["endpoint"]})
    deadline = time.monotonic() + 30
    while ctl.run(tasks.sync_haproxy, {name: inst["endpoint"]}) != {name: "ready"}:
        if time.monotonic() > deadline:
            raise RuntimeError("HAProxy did not see the guest as ready")
        time.sleep(0.5)
    out = []
    for run in range(runs):
        dst = "h2" if run % 2 == 0 else "h1"
        out.append(one_migration(ctl, topo, name, dst, front, tmp, run))
        print(f"  migration {run + 1}: {out[-1]}", flush=True)
    ctl.run(tasks.terminate, name, timeout_s=60)
    return out


def drains(ctl: CtlWorker, counts: list[int]) -> list[dict[str, Any]]:
    out = []
    next_index = 10
    for count in counts:
        made = [ctl.run(tasks.launch, next_index + i, "h1", timeout_s=180) for i in range(count)]
        next_index += count
        for inst in made:
            ctl.run(tasks.wait_healthy, inst["endpoint"], 240.0, timeout_s=260)
        result = ctl.run(tasks.drain, "h1", timeout_s=900)
        walls = [m["wall_s"] for m in result["moves"]]
        out.append(
            {
                "guests": count,
                "drain_s": round(result["total_s"], 2),
                "per_guest_s": [round(w, 2) for w in walls],
                "downtime_ms": [int(m["migration_downtime_ms"]) for m in result["moves"]],
                "stuck": result["stuck"],
            }
        )
        print(f"  drain of {count}: {out[-1]}", flush=True)
        for inst in made:
            ctl.run(tasks.terminate, inst["name"], timeout_s=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="migrations of the serving guest")
    parser.add_argument("--drain", default="1,2,4", help="guest counts for the drain-time figure")
    args = parser.parse_args()
    build_image(IMAGE_DIR)
    group = "bm" + uuid.uuid4().hex[:6]
    with netns_hosts(2) as topo, CtlWorker(topo.ctl_netns) as ctl, tempfile.TemporaryDirectory() as tmp:
        config = tasks.cluster_config(
            group,
            topo.cluster_hosts(),
            image_dir=str(IMAGE_DIR),
            guest_pool=topo.guest_pool,
            network=topo.network,
        )
        ctl.run(tasks.open_cluster, config)
        print("migration of a serving guest (TCG, 256 MiB, under 8 req/s through HAProxy)")
        moved = migrations(ctl, topo, args.runs, Path(tmp))
        print("drain time")
        drained = drains(ctl, [int(x) for x in args.drain.split(",")])
        ctl.run(tasks.close, timeout_s=60)
    summary = {
        key: statistics.median(m[key] for m in moved)
        for key in ("wall_s", "libvirt_total_ms", "libvirt_downtime_ms", "longest_answer_gap_during_s",
                    "longest_answer_gap_before_s", "max_latency_during_s", "max_latency_before_s")
    }  # fmt: skip
    summary["failed_requests"] = sum(m["failed"] for m in moved)
    print("medians:", summary)
    path = write_result("migration", {"migrations": moved, "median": summary, "drains": drained})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
