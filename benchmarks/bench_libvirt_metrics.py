"""Cost of libvirt CPU metrics: one bulk ``getAllDomainStats`` versus ``listAllDomains`` + per-domain
``info``, and ``LibvirtProvider.sample``/``list`` as the controller calls them each tick.

* ``qemu:///system`` with real running TCG domains (the real RPC to libvirtd; 1 and 3 domains);
* libvirt's in-process ``test:///default`` driver with 10 / 100 / 1000 domains (no RPC, no QEMU:
  shows how the API scales with the number of domains; the test driver reports no cpu.time, so only
  the call cost is meaningful there).

Run:  .venv/bin/python benchmarks/bench_libvirt_metrics.py [--quick]
Prints a table and writes benchmarks/results/libvirt_metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "libvirt_metrics.json"

from vmscale.config.libvirt import LibvirtProviderConfig  # noqa: E402
from vmscale.ports import free_block  # noqa: E402
from vmscale.providers.base import InstanceSpec  # noqa: E402
from vmscale.providers.libvirt import xml  # noqa: E402
from vmscale.providers.libvirt.accel import AccelChoice  # noqa: E402
from vmscale.providers.libvirt.connection import LibvirtConnection  # noqa: E402
from vmscale.providers.libvirt.image import DEFAULT_IMAGE_DIR, build_image  # noqa: E402
from vmscale.providers.libvirt.provider import LibvirtProvider  # noqa: E402
from vmscale.providers.libvirt.stats import fetch_cpu, fetch_cpu_bulk  # noqa: E402


def timed(fn: Callable[[], object], reps: int) -> float:
    """Median seconds of one call over ``reps`` calls."""
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return samples[len(samples) // 2]


def row(where: str, n: int, bulk: float, per: float, sample: float, listing: float) -> dict[str, Any]:
    return {
        "where": where,
        "domains": n,
        "bulk_call_ms": bulk * 1e3,
        "bulk_per_domain_us": bulk / n * 1e6,
        "per_domain_calls_ms": per * 1e3,
        "per_domain_us": per / n * 1e6,
        "provider_sample_ms": sample * 1e3,
        "provider_list_ms": listing * 1e3,
    }


def real_domains(counts: list[int], reps: int) -> list[dict[str, Any]]:
    subprocess.run(["bash", str(ROOT / "scripts/daemons.sh")], check=True, timeout=120, capture_output=True)
    build_image(DEFAULT_IMAGE_DIR)
    state = Path("/var/lib/vmscale/bench") / uuid.uuid4().hex[:8]
    state.mkdir(parents=True)
    prov = LibvirtProvider(LibvirtProviderConfig(base_port=free_block(64, 30000) or 30000), state)
    group = "mbench" + uuid.uuid4().hex[:4]
    rows = []
    try:
        launched = 0
        for n in counts:
            while launched < n:
                launched += 1
                prov.launch(InstanceSpec(group=group, name=f"{group}-{launched}", index=launched))
            names = [f"{group}-{i}" for i in range(1, n + 1)]
            # Timed inside the worker thread, so the figures are libvirt's cost, not the thread hop's.
            bulk = prov.conn.call(
                "bench", lambda c, ns=names: timed(lambda: fetch_cpu_bulk(c, ns), reps), timeout_s=300
            )
            per = prov.conn.call(
                "bench", lambda c, ns=names: timed(lambda: fetch_cpu(c, ns), reps), timeout_s=300
            )
            sample = timed(lambda ns=names: prov.sample(ns), reps)
            listing = timed(lambda: prov.list(group), reps)
            rows.append(row("qemu:///system (TCG VMs)", n, bulk, per, sample, listing))
    finally:
        for inst in prov.list(group):
            prov.terminate(inst.name, graceful_timeout_s=0)
        prov.close()
        shutil.rmtree(state, ignore_errors=True)
    return rows


def test_driver(counts: list[int], reps: int, tmp: Path) -> list[dict[str, Any]]:
    conn = LibvirtConnection("test:///default", timeout_s=600)
    image = tmp / "image"
    image.mkdir(parents=True, exist_ok=True)
    for f in ("base.qcow2", "vmlinuz", "initrd.img"):
        (image / f).write_bytes(b"")
    (image / "manifest.json").write_text(json.dumps({"hash": "bench", "inputs": {}}))
    config = LibvirtProviderConfig(
        uri="test:///default", image_dir=str(image), instance_dir=str(tmp / "inst")
    )
    prov = LibvirtProvider(config, tmp, accel=AccelChoice("tcg", "benchmark"))
    rows = []
    for n in counts:
        group = f"t{n}x" + uuid.uuid4().hex[:4]
        doms = []
        for i in range(1, n + 1):
            meta = xml.InstanceMeta(group, f"{group}-{i}", i, 20000 + i)
            spec = xml.DomainSpec(
                meta=meta, domain_type="qemu", vcpus=1, memory_mb=64, disk_path="/nonexistent.qcow2",
                console_log="/dev/null", kernel="/k", initrd="/i", host_port=20000 + i,
            )  # fmt: skip
            dom = conn.call("define", lambda c, x=xml.build_domain_xml(spec): c.defineXML(x))
            conn.call("start", lambda c, d=dom: d.create())
            doms.append(dom)
        names = [d.name() for d in doms]
        r = max(3, reps // max(1, n // 10))
        bulk = conn.call("bench", lambda c, ns=names, r=r: timed(lambda: fetch_cpu_bulk(c, ns), r))
        per = conn.call("bench", lambda c, ns=names, r=r: timed(lambda: fetch_cpu(c, ns), r))
        sample = timed(lambda ns=names: prov.sample(ns), r)
        listing = timed(lambda g=group: prov.list(g), r)
        rows.append(row("test:///default", n, bulk, per, sample, listing))
        for d in doms:
            conn.call("remove", lambda c, d=d: (d.destroy(), d.undefine()))
    prov.close()
    conn.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions; no 1000-domain run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    reps = 20 if args.quick else 100
    tmp = Path("/tmp") / f"vmscale-bench-{uuid.uuid4().hex[:6]}"
    try:
        rows = real_domains([1, 3], reps)
        rows += test_driver([10, 100] if args.quick else [10, 100, 1000], reps, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "reps": reps, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    head = ("where", "n", "bulk ms", "bulk µs/dom", "per-dom ms", "per µs/dom", "sample() ms", "list() ms")
    print("{:<26}{:>6}{:>10}{:>13}{:>12}{:>12}{:>13}{:>11}".format(*head))
    for r in rows:
        print(
            f"{r['where']:<26}{r['domains']:>6}{r['bulk_call_ms']:>10.2f}{r['bulk_per_domain_us']:>13.1f}"
            f"{r['per_domain_calls_ms']:>12.2f}{r['per_domain_us']:>12.1f}{r['provider_sample_ms']:>13.2f}"
            f"{r['provider_list_ms']:>11.2f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
