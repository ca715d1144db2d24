"""The process provider's warm pool with real backends: parked means started, out of rotation and
SIGSTOPped (holding memory, using no CPU); a scale-up continues that very process."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil

from tests.integration.live_support import (
    READY_TIMEOUT_S,
    backend_processes,
    controller_state,
    live_config_data,
    running_service,
)
from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.service import Service


def parked_name(svc: Service) -> str | None:
    return next((i.name for i in svc.controller.instances() if i.state == "warm"), None)


def backend_of(group: str, name: str) -> psutil.Process:
    """The backend's main process (its pool workers carry the same command line)."""
    procs = [p for p in backend_processes(group) if name in p.cmdline()]
    pids = {p.pid for p in procs}
    (main,) = [p for p in procs if p.ppid() not in pids]
    return main


def test_a_parked_backend_is_stopped_out_of_rotation_and_continued_on_scale_up(tmp_path: Path) -> None:
    data = live_config_data(tmp_path)
    data["warm_pool"] = {"size": 1, "kind": "paused"}
    cfg = parse_config(data)
    group = cfg.group.name
    with running_service(cfg) as svc:
        parked = wait_until(
            lambda: parked_name(svc),
            "a parked instance",
            READY_TIMEOUT_S,
            state=lambda: controller_state(svc),
        )
        proc = backend_of(group, parked)
        wait_until(lambda: proc.status() == psutil.STATUS_STOPPED, f"{parked} SIGSTOPped", READY_TIMEOUT_S)
        assert parked not in {e["name"] for e in svc.controller.endpoints()}, "parked is out of rotation"
        assert svc.controller.group().actual == 1

        svc.controller.set_desired(2, "test")
        wait_until(
            lambda: parked in {e["name"] for e in svc.controller.endpoints()},
            f"{parked} serving",
            READY_TIMEOUT_S,
            state=lambda: controller_state(svc),
        )
        assert backend_of(group, parked).pid == proc.pid, "the same process, continued, not a new one"
        assert proc.status() != psutil.STATUS_STOPPED
        url = next(e["url"] for e in svc.controller.endpoints() if e["name"] == parked)
        assert httpx.get(f"{url}/fib/10", timeout=10, trust_env=False).json()["server"] == parked

        refill = wait_until(
            lambda: parked_name(svc),
            "the pool refilled",
            READY_TIMEOUT_S,
            state=lambda: controller_state(svc),
        )
        assert refill != parked
        wait_until(
            lambda: backend_of(group, refill).status() == psutil.STATUS_STOPPED,
            f"{refill} stopped",
            READY_TIMEOUT_S,
        )
        group_now = svc.controller.group()
        assert (group_now.actual, group_now.ready, group_now.warm) == (2, 2, 1)
