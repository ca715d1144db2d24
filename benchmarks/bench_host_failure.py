"""A host dies: from its libvirtd being killed to a replacement serving, under TCG.

    .venv/bin/python benchmarks/bench_host_failure.py [--runs 3] [--grace 10]

Brings up three hosts (tests/support/netns_hosts.py: each its own network and mount namespace and
libvirtd, TLS), runs `vmscale up` with HAProxy in the topology's ctl namespace (tests/support/ctl_up.py)
for a group of two guests placed by spread, and a bounded open-loop load (4 req/s of fib(18))
through HAProxy. Each run kills the libvirtd of one guest's host by its pid (the guest keeps running:
QEMU does not need the daemon), waits for the replacement, starts the daemon again and waits for the
old copy to be removed there (fencing). From vmscale's event log and the client's own log:

* **detected**: kill -> the instance is ``unknown`` (out of rotation): the next listing that fails;
* **given up**: kill -> it fails because its host is unreachable (``cluster.unreachable_after_s``)
  and a replacement is launched on a host that answers;
* **ready**: kill -> the replacement passes its health check and enters rotation;
* **first answer**: kill -> the first request through HAProxy answered by the replacement;
* **boot**: the replacement's launch -> ready (TCG boot);
* failed requests over the run (the silent host's guest is drained, not cut off).

Writes benchmarks/results/host_failure.json. Needs root (namespaces) and the guest image
(``VMSCALE_IMAGE_DIR``, default /var/lib/vmscale/image).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the topology helpers live with the tests

from tests.support.ctl_up import BOOT_S, FRONT, CtlUp, service_config  # noqa: E402
from tests.support.netns_hosts import Topology, netns_hosts  # noqa: E402
from tests.support.wait import wait_until  # noqa: E402

from vmscale.bench.machine import write_result  # noqa: E402
from vmscale.providers.libvirt.image import build_image  # noqa: E402

IMAGE_DIR = Path(os.environ.get("VMSCALE_IMAGE_DIR", "/var/lib/vmscale/image"))


def first_time(events: list[dict[str, Any]], name: str, to: str, after: float) -> float | None:
    """When ``name`` first went ``to`` after ``after`` (names come back once their index is free)."""
    return next(
        (e["t"] for e in events if e["t"] >= after and e["data"]["name"] == name and e["data"]["to"] == to),
        None,
    )


def ready_names(up: CtlUp) -> dict[str, str]:
    """name -> host of the ready instances."""
    return {n: r["details"]["host"] for n, r in up.instances().items() if r["state"] == "ready"}


def two_ready(up: CtlUp, without: str = "") -> dict[str, str] | None:
    """Two ready instances, ``without`` not one of them (name -> host), or None."""
    rows = ready_names(up)
    return rows if len(rows) == 2 and without not in rows else None


def one_run(up: CtlUp, topo: Topology, tmp: Path, run: int) -> dict[str, Any]:
    before = wait_until(lambda: two_ready(up), "two ready", BOOT_S, poll_s=1)
    victim = min(before)
    host = before[victim]
    log = tmp / f"client-{run}.jsonl"
    load = topo.load(FRONT, log, rate=4, duration=200, seed=run)
    try:
        time.sleep(10)  # a benchmark may pace itself: the load settles before the failure
        t_kill = time.time()
        topo.stop_libvirtd(host)  # SIGKILL by pid
        after = wait_until(lambda: two_ready(up, victim), "a replacement ready", BOOT_S + 60, poll_s=0.5)
        (new,) = set(after) - set(before)
        time.sleep(5)  # let the client's requests reach the replacement before its log is read
        topo.start_libvirtd(host)
        wait_until(lambda: victim not in up.instances(), f"{victim} fenced on {host}", 120, poll_s=1)
    finally:
        load.terminate()
        load.communicate(timeout=30)
    events = up.events("instance")
    records = [json.loads(x) for x in log.read_text().splitlines() if '"t_send"' in x]
    served = [
        r["t_send"] + r["latency_s"]
        for r in records
        if r.get("server") == new and r["status"] == 200 and r["t_send"] >= t_kill
    ]
    unknown, failed = (
        first_time(events, victim, "unknown", t_kill),
        first_time(events, victim, "failed", t_kill),
    )
    launched, ready = first_time(events, new, "pending", t_kill), first_time(events, new, "ready", t_kill)

    def since(t: float | None) -> float | None:
        return None if t is None else round(t - t_kill, 2)

    return {
        "killed_host": host,
        "replaced": victim,
        "replacement": new,
        "replacement_host": after[new],
        "detected_s": since(unknown),
        "given_up_s": since(failed),
        "launched_s": since(launched),
        "ready_s": since(ready),
        "first_answer_s": since(min(served)) if served else None,
        "boot_s": round(ready - launched, 2) if ready and launched else None,
        "requests": len(records),
        "failed_requests": sum(1 for r in records if r["status"] != 200),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--grace", type=float, default=10.0, help="cluster.unreachable_after_s")
    args = parser.parse_args()
    build_image(IMAGE_DIR)
    group = "bf" + uuid.uuid4().hex[:6]
    runs = []
    with netns_hosts(3) as topo, tempfile.TemporaryDirectory() as tmp:
        cfg = service_config(
            topo, group, IMAGE_DIR, size={"min": 2, "max": 2}, unreachable_after_s=args.grace
        )
        with CtlUp(topo, cfg, Path(tmp) / "state") as up:
            for run in range(args.runs):
                runs.append(one_run(up, topo, Path(tmp), run))
                print(f"  run {run + 1}: {runs[-1]}", flush=True)
    keys = ("detected_s", "given_up_s", "launched_s", "ready_s", "first_answer_s", "boot_s")
    median = {k: statistics.median(r[k] for r in runs if r[k] is not None) for k in keys}
    median["failed_requests"] = sum(r["failed_requests"] for r in runs)
    median["requests"] = sum(r["requests"] for r in runs)
    print("medians:", median)
    path = write_result("host_failure", {"grace_s": args.grace, "runs": runs, "median": median})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
