"""Vertical-first with real backend processes behind a real HAProxy: the controller grows the one
instance in place (its CPU quota and its fib workers) when requests queue, HAProxy weighs it by the
vCPUs it serves with, every step is in the event log, and it shrinks back when the load is gone.

Nothing here steers the controller: the policy decides from what the backend reports. The load is
a bounded closed loop of slow requests through HAProxy's front address, on 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.haproxy_support import free_port, short_state_dir
from tests.integration.live_support import (
    READY_TIMEOUT_S,
    controller_state,
    live_config_data,
    running_service,
)
from tests.support.closed_loop import ClosedLoop
from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.lb.haproxy import HaproxyLoadBalancer
from vmscale.service import Service

HEAVY = "/fib/31"  # tenths of a second on one worker: two at a time queue on one
LOAD_LIMIT_S = 120.0  # the load stops by itself after this, whatever happens


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with short_state_dir("vmscale-vp-") as path:
        yield path


def vertical_config(state_dir: Path) -> Any:
    data = live_config_data(state_dir, max_=1)  # one instance: all the room there is, is its own
    data["provider"]["process"]["cpu_limit"] = "auto"
    data["template"] = {"vcpus": 1, "max_vcpus": 2, "memory_mb": 256, "fib_max_n": 32}
    data["scaling"] = {"mode": "vertical-first"}
    # Requests in flight per vCPU: two on one vCPU is above 1.5 (grow); two on two is not. Idle
    # for three samples in a row: below 0.1 (shrink, one vCPU at a time).
    data["policies"] = [
        {
            "kind": "threshold",
            "name": "queue",
            "metric": "inflight",
            "upper": 1.5,
            "lower": 0.1,
            "samples_up": 2,
            "samples_down": 3,
        }
    ]
    data["lb"] = {
        "kind": "haproxy",
        "haproxy": {"bind": f"127.0.0.1:{free_port()}", "stats_bind": f"127.0.0.1:{free_port()}"},
    }
    return parse_config(data, "vertical-first process group")


def events(svc: Service, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in svc.events.recent([kind], limit=5000)]


def weight(svc: Service, name: str) -> int:
    assert isinstance(svc.lb, HaproxyLoadBalancer)
    return svc.lb.api.servers_state(svc.cfg.group.name)[name].weight


def healthz(svc: Service) -> dict[str, Any]:
    url = svc.controller.endpoints()[0]["url"]
    return dict(httpx.get(url + "/healthz", timeout=5, trust_env=False).json())


def test_a_process_grows_in_place_under_load_and_shrinks_back(state_dir: Path) -> None:
    cfg = vertical_config(state_dir)
    with running_service(cfg, paused=False) as svc:
        (name,) = [i.name for i in svc.controller.instances()]
        pid = svc.controller.instances()[0].details["pid"]
        wait_until(lambda: weight(svc, name) == 1, "the server in HAProxy at weight 1", READY_TIMEOUT_S)
        front = svc.lb.frontend_url()
        assert front is not None
        with ClosedLoop(front + HEAVY, clients=2, limit_s=LOAD_LIMIT_S, timeout_s=30) as load:
            wait_until(
                lambda: [e for e in events(svc, "resize") if e["stage"] == "serving" and e["to"] == 2],
                "the resize to 2 vCPUs to reach the backend",
                LOAD_LIMIT_S,
                state=lambda: controller_state(svc),
            )
            grown = svc.controller.instances()
            assert [(i.name, i.vcpus) for i in grown] == [(name, 2)]
            assert grown[0].details["pid"] == pid, "grown in place, not replaced"
            body = healthz(svc)
            assert body["workers"] == 2, body
            wait_until(lambda: weight(svc, name) == 2, "HAProxy to weigh it by its 2 vCPUs", 30)
        assert load.answers and load.failed == 0, "nothing failed meanwhile"
        decided = svc.controller.decisions(limit=50)
        decision = next(d for d in decided if d.get("placement", "").startswith("resize"))
        assert decision["placement"] == "resize-up" and decision["capacity"]["resizes"] == [[name, 1, 2]]
        started = [e for e in events(svc, "resize") if e["stage"] == "started" and e["to"] == 2]
        assert started and started[0]["reason"].startswith("vertical-first: 1 -> 2 vCPUs wanted")
        # Idle now: three quiet samples take the vCPU back, and the backend its worker.
        wait_until(
            lambda: [e for e in events(svc, "resize") if e["stage"] == "serving" and e["to"] == 1],
            "the shrink back to 1 vCPU",
            60,
            state=lambda: controller_state(svc),
        )
        assert healthz(svc)["workers"] == 1
        wait_until(lambda: weight(svc, name) == 1, "HAProxy back at weight 1", 30)
        assert len(svc.controller.instances()) == 1, "never a second instance: it had room to grow"
