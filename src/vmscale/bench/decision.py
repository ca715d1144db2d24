"""Decision to added capacity serving, through the controller: from the autoscaler's own scale-up
decision (its ``decision`` event) to the capacity it asked for serving (the new or resumed
instance's ``ready`` event, or a live resize's ``serving`` event: the workload reports the CPUs),
for every way vmscale adds capacity. ``benchmarks/bench_decision.py`` runs it.

Each measurement is a real group of one 1-vCPU instance whose policy asks for more as soon as
requests queue (a threshold on requests in flight per vCPU, one sample): a closed loop of
``clients`` slow requests on the instance is the demand, and stays on until the capacity serves
(capacity is wanted under load). The clock is the controller's: event times from its bus.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from vmscale.bench import measure, runner
from vmscale.config.schema import VmscaleConfig
from vmscale.service import Service

# Path -> what makes the group add capacity that way (runner.group_config keywords).
PATHS: dict[str, dict[str, Any]] = {
    "cold boot": {},
    "paused pool": {"warm_pool": {"size": 1, "kind": "paused"}},
    "saved pool": {"warm_pool": {"size": 1, "kind": "saved"}},
    "vCPU hot-add": {"max_vcpus": 2, "scaling": {"mode": "vertical-first"}, "max_count": 1},
    "snapshot clone": {"libvirt": {"launch": "clone"}},
}
LIBVIRT_ONLY = frozenset({"saved pool", "snapshot clone"})
TRIGGER = {
    "kind": "threshold",
    "name": "queue",
    "metric": "inflight",
    "upper": 1.5,  # requests in flight per vCPU: the closed loop keeps more than that on one
    "samples_up": 1,
    "step": 1,  # one instance, or (vertical-first) one vCPU
}


def paths_for(provider: str) -> list[str]:
    return [p for p in PATHS if provider == "libvirt" or p not in LIBVIRT_ONLY]


def path_config(state_dir: Path, path: str, provider: runner.Provider) -> VmscaleConfig:
    settings = {"max_count": 2, **PATHS[path]}
    return runner.group_config(state_dir, policies=[TRIGGER], min_count=1, provider=provider, **settings)


def _load(url: str, stop: threading.Event, limit_s: float) -> None:
    end = time.monotonic() + limit_s
    with httpx.Client(timeout=120, trust_env=False) as http:
        while not stop.is_set() and time.monotonic() < end:
            try:
                http.get(url)
            except httpx.HTTPError:
                time.sleep(0.05)


def measure_once(
    state_dir: Path, path: str, provider: runner.Provider, n: int, *, clients: int = 3, limit_s: float = 240
) -> dict[str, Any]:
    """One measurement: the seconds from decision to added capacity serving, and what happened."""
    cfg = path_config(state_dir, path, provider)
    svc = Service(cfg, log_path=state_dir / "autoscaler.jsonl")
    svc.start()
    stop = threading.Event()
    loaders: list[threading.Thread] = []
    try:
        # A warm pool parked; for clones, a golden made (the first instance is the first clone).
        runner.wait_settled(svc, cfg, timeout_s=limit_s)
        time.sleep(2 * cfg.group.interval_s)  # a calm sample or two before the demand
        url = f"{svc.controller.endpoints()[0]['url']}/fib/{n}"
        loaders = [threading.Thread(target=_load, args=(url, stop, limit_s)) for _ in range(clients)]
        for t in loaders:
            t.start()
        deadline = time.monotonic() + limit_s
        while (
            seconds := measure.first_added_s([e.to_dict() for e in svc.events.recent(limit=5000)])
        ) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: no capacity added within {limit_s:g} s of the load")
            time.sleep(0.05)
        decision = next(
            e.data for e in svc.events.recent(["decision"], limit=5000) if e.data.get("actor") == "autoscaler"
        )
        return {
            "seconds": seconds,
            "placement": decision.get("placement", ""),
            "reason": decision["reason"][:200],
        }
    finally:
        stop.set()
        for t in loaders:
            t.join(timeout=150)
        svc.stop(terminate=True)
