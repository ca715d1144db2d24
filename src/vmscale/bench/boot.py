"""Decision to serving, measured on a real group: how long from "we need one more instance" until
that instance answers a request, cold or from a warm pool.

The clock starts when the desired count is raised (the decision) and stops at the first HTTP 200
from the new instance's endpoint, found the way clients find it (the controller's ready list).
Works with any provider; the libvirt benchmark script passes its own config.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from vmscale.bench import runner
from vmscale.config import parse_config
from vmscale.config.schema import VmscaleConfig
from vmscale.service import Service


def process_config(state_dir: Path, warm: str | None) -> VmscaleConfig:
    return parse_config(
        {
            "group": {"name": "boot", "min": 1, "max": 2, "initial": 1, "interval_s": 1.0},
            "provider": {"kind": "process", "process": {"base_port": runner.free_block(4)}},
            "warm_pool": {"size": 1 if warm else 0, "kind": warm or "paused"},
            "drain": {"timeout_s": 5, "grace_s": 0},
            "api": {"bind": f"127.0.0.1:{runner.free_port()}"},
            "state": {"dir": str(state_dir)},
        },
        "bench-boot",
    )


def libvirt_config(state_dir: Path, warm: str | None, image_dir: str = "") -> VmscaleConfig:
    return parse_config(
        {
            "group": {"name": "bootlv", "min": 1, "max": 2, "initial": 1, "interval_s": 1.0},
            "provider": {
                "kind": "libvirt",
                "libvirt": {"base_port": runner.free_block(4), "image_dir": image_dir},
            },
            "warm_pool": {"size": 1 if warm else 0, "kind": warm or "paused"},
            "health": {"boot_timeout_s": 120},
            "drain": {"timeout_s": 5, "grace_s": 0},
            "api": {"bind": f"127.0.0.1:{runner.free_port()}"},
            "state": {"dir": str(state_dir)},
        },
        "bench-boot",
    )


def _wait(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _serving(endpoints: list[dict[str, str]], known: set[str], client: httpx.Client) -> bool:
    new = [e for e in endpoints if e["name"] not in known]
    if not new:
        return False
    try:
        return client.get(new[0]["url"] + "/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def decision_to_serving(cfg: VmscaleConfig, runs: int, timeout_s: float = 180) -> list[float]:
    svc = Service(cfg, log_path=Path(cfg.state.dir) / "autoscaler.jsonl")
    svc.start()
    ctl = svc.controller
    ctl.set_paused(True, "bench")
    out: list[float] = []
    try:
        with httpx.Client(timeout=2, trust_env=False) as client:
            for _ in range(runs):
                _wait(
                    lambda: ctl.group().ready == 1 and ctl.group().warm >= cfg.warm_pool.size,
                    timeout_s,
                    "the group to settle (1 ready, pool full)",
                )
                before = {e["name"] for e in ctl.endpoints()}
                t0 = time.perf_counter()
                ctl.set_desired(2, "bench")
                _wait(
                    lambda known=before: _serving(ctl.endpoints(), known, client),
                    timeout_s,
                    "the new instance to serve",
                )
                out.append(time.perf_counter() - t0)
                ctl.set_desired(1, "bench")
                _wait(
                    lambda: ctl.group().actual == 1 and ctl.group().states.get("draining", 0) == 0,
                    timeout_s,
                    "scale-in",
                )
    finally:
        svc.stop()
    return out


def summary(xs: list[float]) -> dict[str, Any]:
    s = sorted(xs)
    return {
        "n": len(s),
        "median_s": round(statistics.median(s), 4),
        "p95_s": round(s[min(len(s) - 1, int(0.95 * len(s)))], 4),
        "min_s": round(s[0], 4),
        "max_s": round(s[-1], 4),
    }
