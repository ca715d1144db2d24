"""New capacity under TCG, at the provider level: from the call that adds capacity to that capacity
serving, for every way vmscale has, interleaved round by round so they share the host's mood.

* cold boot: ``launch`` -> the new VM's ``/healthz`` answers;
* paused pool: ``resume`` of a suspended VM -> it answers;
* saved pool: ``resume`` of a managed-saved VM -> it answers;
* vCPU hot-add: ``resize(n -> n+1)`` -> the guest reports n+1 online CPUs *and* runs n+1 fib
  workers (``/healthz`` ``cpus`` and ``workers``), i.e. the added vCPU takes requests;
* snapshot clone: ``launch`` with ``launch = "clone"`` (the golden made beforehand) -> the clone
  answers under its own name.

The decision-level figures (policy decision -> serving, through the controller) come after the
controller integration. Run as root: ``.venv/bin/python benchmarks/bench_capacity.py --rounds 5``
(``VMSCALE_IMAGE_DIR`` picks the image). Prints a table, writes benchmarks/results/capacity.json.
Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "capacity.json"
MAX_VCPUS = 4

from vmscale.config.libvirt import LibvirtProviderConfig  # noqa: E402
from vmscale.ports import free_block  # noqa: E402
from vmscale.providers.base import InstanceSpec, instance_port  # noqa: E402
from vmscale.providers.libvirt.image import DEFAULT_IMAGE_DIR, build_image  # noqa: E402
from vmscale.providers.libvirt.provider import LibvirtProvider  # noqa: E402

PATHS = ("cold boot", "paused pool", "saved pool", "vCPU hot-add", "snapshot clone")


def until(url: str, ok: Callable[[dict[str, Any]], bool], deadline_s: float = 300.0) -> float:
    """Monotonic time at which ``/healthz`` first answered 200 with ``ok(body)`` true."""
    end = time.monotonic() + deadline_s
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < end:
            try:
                resp = client.get(f"{url}/healthz")
                if resp.status_code == 200 and ok(resp.json()):
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise TimeoutError(f"{url}/healthz not as wanted within {deadline_s:.0f} s")


def one_round(booter: LibvirtProvider, cloner: LibvirtProvider, group: str, r: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {p: [] for p in PATHS}
    spec = InstanceSpec(group=group, name=f"{group}-{r}", index=r, memory_mb=512)
    url = f"http://127.0.0.1:{instance_port(booter.config.base_port, spec.index)}"
    try:
        t0 = time.monotonic()
        booter.launch(spec)
        out["cold boot"].append(until(url, lambda h: True) - t0)
        for kind, path in (("paused", "paused pool"), ("saved", "saved pool")):
            booter.pause(spec.name, kind)  # type: ignore[arg-type]
            t0 = time.monotonic()
            booter.resume(spec.name)
            out[path].append(until(url, lambda h: True) - t0)
        until(url, lambda h: h["cpus"] == 1 == h["workers"])
        for n in range(2, MAX_VCPUS + 1):
            t0 = time.monotonic()
            booter.resize(spec.name, n)
            out["vCPU hot-add"].append(until(url, lambda h, n=n: h["cpus"] == n == h["workers"]) - t0)
    finally:
        booter.terminate(spec.name, graceful_timeout_s=0)
    clone = InstanceSpec(group=group, name=f"{group}-c{r}", index=100 + r, memory_mb=512)
    curl = f"http://127.0.0.1:{instance_port(cloner.config.base_port, clone.index)}"
    try:
        t0 = time.monotonic()
        cloner.launch(clone)
        out["snapshot clone"].append(until(curl, lambda h: h["server"] == clone.name) - t0)
    finally:
        cloner.terminate(clone.name, graceful_timeout_s=0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    subprocess.run(["bash", str(ROOT / "scripts/daemons.sh")], check=True, timeout=120)
    image_dir = Path(os.environ.get("VMSCALE_IMAGE_DIR", str(DEFAULT_IMAGE_DIR)))
    manifest, _ = build_image(image_dir)
    state = Path("/var/lib/vmscale/bench") / uuid.uuid4().hex[:8]  # reachable by the qemu user
    state.mkdir(parents=True)
    group = "capb" + uuid.uuid4().hex[:4]
    common = {"image_dir": str(image_dir), "base_port": free_block(args.rounds + 101, 30000) or 30000}
    booter = LibvirtProvider(LibvirtProviderConfig(**common), state, max_vcpus=MAX_VCPUS)  # type: ignore[arg-type]
    cloner = LibvirtProvider(
        LibvirtProviderConfig(launch="clone", **common),  # type: ignore[arg-type]
        state,
        max_vcpus=MAX_VCPUS,
    )
    loads = [os.getloadavg()[0]]
    raw: dict[str, list[float]] = {p: [] for p in PATHS}
    try:
        t0 = time.monotonic()
        cloner.prepare(InstanceSpec(group=group, name=f"{group}-c0", index=100, memory_mb=512))
        golden_s = time.monotonic() - t0
        for r in range(1, args.rounds + 1):
            for path, values in one_round(booter, cloner, group, r).items():
                raw[path] += values
            loads.append(os.getloadavg()[0])
            print(f"round {r}: " + ", ".join(f"{p} {v[-1]:.3f} s" for p, v in raw.items() if v), flush=True)
    finally:
        cloner.drop_goldens(group)
        booter.close()
        cloner.close()
        shutil.rmtree(state, ignore_errors=True)

    table = {
        p: {"n": len(v), "median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
        for p, v in raw.items()
        if v
    }
    results = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": loads},
        "image": manifest.hash,
        "guest": {"vcpus": 1, "max_vcpus": MAX_VCPUS, "memory_mb": 512},
        "golden_made_s": round(golden_s, 2),
        "results": table,
        "raw_s": raw,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs; golden {golden_s:.1f} s")
    print(f"{'path':<18}{'runs':>6}{'median':>10}{'min':>10}{'max':>10}")
    for path, s in table.items():
        print(f"{path:<18}{s['n']:>6}{s['median_s']:>9.3f}s{s['min_s']:>9.3f}s{s['max_s']:>9.3f}s")


if __name__ == "__main__":
    main()
