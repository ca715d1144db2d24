"""Run one group under a scripted load and return what happened, as the demo does but quietly.

Used by the scenario and reaction benchmarks. Everything is real: a controller with the process
provider (backend processes with CPU quotas) or the libvirt provider (TCG guests from the built
image), and the load client following the event stream. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from vmscale import ports
from vmscale.config import parse_config
from vmscale.config.libvirt import TCG_HEALTH
from vmscale.config.schema import VmscaleConfig
from vmscale.ports import free_port
from vmscale.service import Service
from vmscale.workload.discovery import EventStreamEndpoints
from vmscale.workload.load import LoadOptions, calibrate_n, run_phases
from vmscale.workload.load_plan import Phase


def free_block(count: int, start: int = 23000) -> int:
    base = ports.free_block(count, start)
    if base is None:
        raise RuntimeError("no free block of loopback ports")
    return base


Provider = Literal["process", "libvirt"]


def group_config(
    state_dir: Path,
    *,
    policies: list[dict[str, Any]],
    min_count: int,
    max_count: int,
    interval_s: float = 1.0,
    provider: Provider = "process",
    max_vcpus: int | None = None,
    libvirt: dict[str, Any] | None = None,
    **sections: Any,
) -> VmscaleConfig:
    """One benchmark group, named uniquely (``qemu:///system`` is shared). For libvirt,
    ``state_dir`` must be reachable by the qemu user (not under a 0700 temporary folder): the VMs'
    overlays live there; its guests boot from ``$VMSCALE_IMAGE_DIR`` when set (as the e2e tests do).
    ``max_vcpus`` gives instances room to grow, ``libvirt`` adds
    provider.libvirt settings, other keywords are whole sections (``scaling``, ``warm_pool``...)."""
    base_port = free_block(max_count + 3)
    provider_section: dict[str, Any] = (
        {"kind": "process", "process": {"base_port": base_port}}
        if provider == "process"
        else {
            "kind": "libvirt",
            "libvirt": {
                "base_port": base_port,
                "call_timeout_s": 15.0,
                # An image folder of one's own keeps a benchmark off the guests others run from the
                # shared one (libvirt relabels a kernel file per domain: two daemons can clash on it).
                "image_dir": os.environ.get("VMSCALE_IMAGE_DIR", ""),
                **(libvirt or {}),
            },
        }
    )
    return parse_config(
        {
            "group": {
                "name": "bench" + uuid.uuid4().hex[:6],
                "min": min_count,
                "max": max_count,
                "initial": min_count,
                "interval_s": interval_s,
            },
            "provider": provider_section,
            "template": {"vcpus": 1, "memory_mb": 512, "max_vcpus": max_vcpus},
            "policies": policies,
            "health": {"timeout_s": 1.0, "boot_timeout_s": 30} if provider == "process" else TCG_HEALTH,
            "drain": {"timeout_s": 10 if provider == "process" else 30, "grace_s": 0.3},
            # The guest's busybox init ignores the ACPI button: a long graceful wait only delays scale-in.
            "launch": {"terminate_timeout_s": 10.0 if provider == "process" else 2.0},
            "api": {"bind": f"127.0.0.1:{free_port()}"},
            "state": {"dir": str(state_dir)},
            **sections,
        },
        "bench",
    )


@dataclass
class RunResult:
    records: list[dict[str, Any]]
    events: list[dict[str, Any]]
    load_start: float
    load_end: float


def settled(svc: Service, cfg: VmscaleConfig) -> bool:
    """The group is where a run starts from: its initial instances ready and its warm pool parked.
    A run that began earlier would let the first scale-up take a cold path the contender does not
    stand for (a warm-pool contender booting because its pool was still being filled)."""
    g = svc.controller.group()
    return g.ready >= cfg.group.initial_count and g.warm >= cfg.warm_pool.size


def wait_settled(svc: Service, cfg: VmscaleConfig, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not settled(svc, cfg):
        if time.monotonic() > deadline:
            g = svc.controller.group()
            raise RuntimeError(
                f"the group did not settle within {timeout_s:g} s: "
                f"{g.ready}/{cfg.group.initial_count} ready, {g.warm}/{cfg.warm_pool.size} parked"
            )
        time.sleep(0.1)


def calibrate(state_dir: Path, request_s: float = 0.2, provider: Provider = "process") -> tuple[int, float]:
    """Heavy n and the request rate one instance (1 vCPU) can serve, measured on a real instance."""
    cfg = group_config(state_dir, policies=[], min_count=1, max_count=1, provider=provider)
    svc = Service(cfg, log_path=state_dir / "calibration.jsonl")
    svc.start()
    try:
        wait_settled(svc, cfg, timeout_s=180)
        url = svc.controller.endpoints()[0]["url"]
        n, per = measure_request(url, request_s, cfg.workload.fib.max_n, reps=7)
    finally:
        svc.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    return n, 1.0 / per


def measure_request(url: str, request_s: float, fib_max_n: int, reps: int = 5) -> tuple[int, float]:
    """On the backend at ``url``: the n whose request takes about ``request_s``, and the median
    seconds one such request takes (``reps`` sequential requests)."""
    with httpx.Client(timeout=60, trust_env=False) as client:

        def once(n: int) -> float:
            t0 = time.perf_counter()
            client.get(f"{url}/fib/{n}").raise_for_status()
            return time.perf_counter() - t0

        async def timed(_: str, n: int, reps: int = 3) -> float:
            return statistics.median(once(n) for _ in range(reps))

        n = asyncio.run(calibrate_n(timed, url, request_s, fib_max_n))
        return n, statistics.median(once(n) for _ in range(reps))


def run(cfg: VmscaleConfig, phases: list[Phase], out: Path) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    svc = Service(cfg, log_path=out / "autoscaler.jsonl")
    svc.start()
    try:
        wait_settled(svc, cfg)
        assert svc.api_url is not None
        t0 = time.time()
        asyncio.run(
            run_phases(
                phases,
                EventStreamEndpoints(svc.api_url),
                out / "client.jsonl",
                options=LoadOptions(pick="p2c", timeout_s=120, keepalive=cfg.provider.kind != "libvirt"),
            )
        )
        t1 = time.time()
    finally:
        svc.stop()
    records = [json.loads(x) for x in (out / "client.jsonl").read_text().splitlines() if x.strip()]
    events = [json.loads(x) for x in (out / "autoscaler.jsonl").read_text().splitlines() if x.strip()]
    return RunResult([r for r in records if "t_send" in r], events, t0, t1)
