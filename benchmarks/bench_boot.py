"""Boot benchmarks of the libvirt provider with the lean image: time from the ``launch`` call to
``/healthz`` answering through the VM's loopback forward, and the pieces of a launch and a terminate
(overlay creation, define, start, ACPI shutdown, destroy, undefine).

Run:  .venv/bin/python benchmarks/bench_boot.py [--runs 5]   (root; starts the daemons, builds/reuses
the image). Prints a table and writes benchmarks/results/boot.json. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "boot.json"

from vmscale.config.libvirt import LibvirtProviderConfig  # noqa: E402
from vmscale.ports import free_block  # noqa: E402
from vmscale.providers.base import InstanceSpec, instance_port  # noqa: E402
from vmscale.providers.libvirt import xml  # noqa: E402
from vmscale.providers.libvirt.image import DEFAULT_IMAGE_DIR, build_image  # noqa: E402
from vmscale.providers.libvirt.provider import LibvirtProvider  # noqa: E402


def wait_healthz(endpoint: str, deadline_s: float = 180.0) -> float:
    """Seconds (monotonic clock) at which /healthz first answered 200."""
    end = time.monotonic() + deadline_s
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < end:
            try:
                if client.get(f"{endpoint}/healthz").status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"{endpoint}/healthz did not answer within {deadline_s:.0f} s")


def stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_s": statistics.median(values),
        "min_s": min(values),
        "max_s": max(values),
    }


def launch_to_healthz(prov: LibvirtProvider, group: str, runs: int) -> dict[str, list[float]]:
    """The whole provider path, as the controller sees it."""
    out: dict[str, list[float]] = {"launch_call": [], "launch_to_healthz": [], "terminate_graceful": []}
    for i in range(runs):
        spec = InstanceSpec(group=group, name=f"{group}-{i + 1}", index=i + 1)
        t0 = time.monotonic()
        inst = prov.launch(spec)
        out["launch_call"].append(time.monotonic() - t0)
        out["launch_to_healthz"].append(wait_healthz(inst.endpoint) - t0)
        t1 = time.monotonic()
        prov.terminate(spec.name, graceful_timeout_s=30)
        out["terminate_graceful"].append(time.monotonic() - t1)
    return out


def pieces(prov: LibvirtProvider, group: str, runs: int) -> dict[str, list[float]]:
    """Each step of launch and terminate timed on its own (same calls the provider makes)."""
    out: dict[str, list[float]] = {
        k: [] for k in ("overlay_create", "define", "start", "start_to_healthz", "destroy", "undefine")
    }
    backing = prov.backing_image()
    for i in range(runs):
        name = f"{group}-p{i + 1}"
        spec = InstanceSpec(group=group, name=name, index=100 + i)
        port = instance_port(prov.config.base_port, spec.index)
        t = time.monotonic()
        prov.make_overlay(name, backing)
        out["overlay_create"].append(time.monotonic() - t)
        domain_xml = xml.build_domain_xml(prov.domain_spec(spec, port))
        t = time.monotonic()
        dom = prov.conn.call("define", lambda c, x=domain_xml: c.defineXML(x))
        out["define"].append(time.monotonic() - t)
        t = time.monotonic()
        prov.conn.call("start", lambda c, d=dom: d.create())
        out["start"].append(time.monotonic() - t)
        out["start_to_healthz"].append(wait_healthz(f"http://127.0.0.1:{port}") - t)
        t = time.monotonic()
        prov.conn.call("destroy", lambda c, d=dom: d.destroy())
        out["destroy"].append(time.monotonic() - t)
        t = time.monotonic()
        prov.conn.call("undefine", lambda c, d=dom: d.undefineFlags(0))
        out["undefine"].append(time.monotonic() - t)
        prov.terminate(name, graceful_timeout_s=0)
    return out


PATHS = ("process-cold", "process-paused", "libvirt-cold", "libvirt-paused", "libvirt-saved")


def decision_to_serving_paths(paths: list[str], runs: int) -> dict[str, dict[str, Any]]:
    """Through a real controller: raise the desired count, time until the new instance answers."""
    from vmscale.bench.boot import decision_to_serving, libvirt_config, process_config, summary

    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        if path not in PATHS:
            raise SystemExit(f"unknown path {path!r}; choose from {', '.join(PATHS)}")
        provider, kind = path.split("-")
        warm = None if kind == "cold" else kind
        state = Path("/var/lib/vmscale/bench") / uuid.uuid4().hex[:8]  # reachable by the qemu user
        state.mkdir(parents=True)
        try:
            cfg = process_config(state, warm) if provider == "process" else libvirt_config(state, warm)
            n = runs if provider == "process" else max(2, runs // 2)
            out[path] = summary(decision_to_serving(cfg, n))
        finally:
            shutil.rmtree(state, ignore_errors=True)
        print(f"{path}: {out[path]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--paths",
        default=",".join(PATHS),
        help="decision-to-serving paths to measure through the controller (comma-separated): "
        + ", ".join(PATHS),
    )
    ap.add_argument("--path-runs", type=int, default=5, help="runs per decision-to-serving path")
    args = ap.parse_args()

    subprocess.run(["bash", str(ROOT / "scripts/daemons.sh")], check=True, timeout=120)
    load_at_start = os.getloadavg()[0]
    manifest, built = build_image(DEFAULT_IMAGE_DIR)
    state = Path("/var/lib/vmscale/bench") / uuid.uuid4().hex[:8]
    state.mkdir(parents=True)
    prov = LibvirtProvider(
        LibvirtProviderConfig(base_port=free_block(args.runs + 101, 30000) or 30000), state
    )
    group = "bench" + uuid.uuid4().hex[:4]
    try:
        whole = launch_to_healthz(prov, group, args.runs)
        parts = pieces(prov, group, args.runs)
    finally:
        for inst in prov.list(group):
            prov.terminate(inst.name, graceful_timeout_s=0)
        prov.close()
        shutil.rmtree(state, ignore_errors=True)

    serving = decision_to_serving_paths([p for p in args.paths.split(",") if p], args.path_runs)

    results: dict[str, Any] = {
        "machine": {
            "cpu": next(
                (
                    ln.split(":", 1)[1].strip()
                    for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")
                ),
                platform.processor(),
            ),
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "load_avg_1m_at_start": load_at_start,
            "load_avg_1m_at_end": os.getloadavg()[0],
        },
        "accel": prov.accel.accel,
        "accel_reason": prov.accel.reason,
        "image": {"hash": manifest.hash, "build_seconds": manifest.build_seconds, "built_now": built},
        "guest": {"vcpus": 1, "memory_mb": 512},
        "results": {k: stats(v) for k, v in {**whole, **parts}.items()},
        "raw_s": {**whole, **parts},
        "decision_to_serving": serving,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print(
        f"accel: {prov.accel.accel} ({prov.accel.reason}); runs: {args.runs}; "
        f"load avg {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} CPUs"
    )
    print(f"{'step':<22}{'median':>10}{'min':>10}{'max':>10}")
    for key, s in results["results"].items():
        unit, scale = ("ms", 1000.0) if s["median_s"] < 1 else ("s", 1.0)
        print(
            f"{key:<22}"
            + "".join(
                f"{s[k] * scale:>8.{1 if unit == 's' else 0}f}{unit:>2}"
                for k in ("median_s", "min_s", "max_s")
            )
        )
    print(f"\n{'decision to serving':<22}{'median':>10}{'p95':>10}{'max':>10}")
    for path, s in serving.items():
        print(f"{path:<22}" + "".join(f"{s[k] * 1000:>8.0f}ms" for k in ("median_s", "p95_s", "max_s")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
