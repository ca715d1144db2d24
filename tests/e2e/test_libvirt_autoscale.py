"""The whole controller with real libvirt TCG guests: overload one VM, watch a second domain appear,
serve and go away again; kill a VM's QEMU and watch it be replaced.

Traffic goes only to 127.0.0.1: the control API and each VM's user-mode port forward.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.libvirt_support import (
    destroy_group,
    domains,
    group_config,
    keep_logs,
    overlays,
    qemu_process,
    virsh,
)
from tests.support.wait import wait_until
from vmscale.bench.runner import measure_request
from vmscale.config import parse_config
from vmscale.service import Service
from vmscale.workload.discovery import EventStreamEndpoints
from vmscale.workload.load import LoadOptions, run_phases
from vmscale.workload.load_plan import Phase

BOOT_S = 120.0  # launch to ready under TCG is ~6-9 s alone; generous for a loaded 2-core CI host

ServiceFactory = Callable[..., Service]


@pytest.fixture
def make_service(
    libvirt_daemons: str, guest_image: Path, libvirt_state_dir: Path, libvirt_group: str
) -> Iterator[ServiceFactory]:
    """Start a Service on a libvirt group; stop it and remove every domain and overlay afterwards."""
    started: list[Service] = []

    def make(**kw: Any) -> Service:
        cfg = parse_config(
            group_config(group=libvirt_group, state_dir=libvirt_state_dir, image_dir=guest_image, **kw)
        )
        svc = Service(cfg, log_path=libvirt_state_dir / "autoscaler.jsonl")
        started.append(svc)
        svc.start()
        return svc

    try:
        yield make
    finally:
        for svc in started:
            try:
                svc.stop(terminate=True)
            finally:
                destroy_group(libvirt_group, libvirt_state_dir)
                keep_logs(libvirt_state_dir, libvirt_group)
        assert domains(libvirt_group) == set(), "domains left behind"


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def instance_state(svc: Service, name: str) -> str | None:
    return next((i.state for i in svc.controller.instances() if i.name == name), None)


def calibrate(url: str, target_s: float = 0.4) -> tuple[int, float, int]:
    """n for a ~target_s request on the VM, the measured seconds per request, the guest's workers."""
    n, per = measure_request(url, target_s, 35, reps=5)
    workers = int(httpx.get(f"{url}/healthz", timeout=30, trust_env=False).json().get("workers", 1))
    return n, per, workers


def test_overload_scales_out_to_a_second_domain_and_back_in(
    make_service: ServiceFactory, libvirt_group: str, libvirt_state_dir: Path
) -> None:
    policy = {
        "kind": "target",
        "name": "inflight",
        "metric": "inflight",
        # Requests in flight per vCPU. One overloaded VM queues without bound (-> 2); two VMs at
        # 75 % each keep about 1 in flight (stays 2); idle gives 0 (-> 1 after the window).
        "target": 1.0,
        # The in-flight count is sampled once a second and two VMs at 75 % hover around the
        # target, so a short window can catch a lull mid-load and flap (seen in CI with 15 s).
        # With 45 s, scaling in mid-load would take 45 s without one recommendation for 2.
        "down_stabilization_s": 45.0,
        "down_limit": {"instances": 1, "percent": 100.0, "period_s": 5.0},
    }
    svc = make_service(policies=[policy])
    first, second = f"{libvirt_group}-1", f"{libvirt_group}-2"
    wait_until(lambda: instance_state(svc, first) == "ready", "the first VM ready", BOOT_S, poll_s=0.5)
    assert domains(libvirt_group, running_only=True) == {first}

    n, per_s, workers = calibrate(svc.controller.endpoints()[0]["url"])
    rate = round(1.5 * workers / per_s, 2)  # one VM serves workers/per_s requests per second
    assert svc.api_url is not None
    client_log = libvirt_state_dir / "client.jsonl"
    phases = [Phase(mode="step", duration_s=60, rate=rate, n=n, name="step")]
    failure: list[BaseException] = []

    def load() -> None:
        try:
            asyncio.run(
                run_phases(
                    phases,
                    EventStreamEndpoints(svc.api_url or ""),
                    client_log,
                    # One connection per request: see LoadOptions.keepalive (uvicorn 0.17 in the guest).
                    options=LoadOptions(
                        pick="p2c", timeout_s=120, max_outstanding=200, seed=7, keepalive=False
                    ),
                )
            )
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    loader = threading.Thread(target=load, name="load")
    loader.start()
    try:
        # The second domain is defined and running in libvirt, then ready in the controller.
        wait_until(
            lambda: second in domains(libvirt_group, running_only=True),
            "GROUP-2 running in libvirt",
            60,
            poll_s=0.5,
        )
        wait_until(lambda: instance_state(svc, second) == "ready", "GROUP-2 ready", BOOT_S, poll_s=0.5)
    finally:
        loader.join(timeout=300)
    assert not loader.is_alive(), "the load client did not finish"
    assert not failure, failure

    log = events(libvirt_state_dir / "autoscaler.jsonl")
    ups = [e for e in log if e["type"] == "decision" and e["data"]["direction"] == "up"]
    assert ups and ups[0]["data"]["desired"] == 2 and ups[0]["data"]["policy"] == "inflight", ups[:1]

    records = [json.loads(x) for x in client_log.read_text().splitlines() if x.strip()]
    requests = [r for r in records if "t_send" in r]
    assert len(requests) >= 0.8 * rate * 60, (len(requests), rate)
    bad = [r for r in requests if r["status"] != 200 or r["error"] is not None]
    assert bad == [], f"{len(bad)} failed requests, e.g. {bad[:3]}"
    served = {r["server"] for r in requests}
    assert served == {first, second}, served

    # Load over: the policy scales in after its stabilization window. The controller drains the
    # least busy ready VM (either one, both are idle now); that domain goes for good.
    def scaled_in() -> str | None:
        drained = [
            e["data"]["name"]
            for e in events(libvirt_state_dir / "autoscaler.jsonl")
            if e["type"] == "instance" and e["data"]["to"] == "draining"
        ]
        return drained[0] if drained and len(domains(libvirt_group)) == 1 else None

    victim = wait_until(scaled_in, "one domain destroyed and undefined after the load", 120, poll_s=0.5)
    (kept,) = {first, second} - {victim}
    assert domains(libvirt_group) == {kept} == domains(libvirt_group, running_only=True)
    assert overlays(libvirt_state_dir) == {f"{kept}.qcow2"}
    decisions = [e["data"] for e in events(libvirt_state_dir / "autoscaler.jsonl") if e["type"] == "decision"]
    assert [(d["direction"], d["desired"]) for d in decisions] == [("up", 2), ("down", 1)], decisions
    wait_until(lambda: svc.controller.group().actual == 1, "the group settled at 1", 30, poll_s=0.5)
    group = svc.controller.group()
    assert (group.desired, group.actual, group.ready) == (1, 1, 1)


@pytest.mark.parametrize("kind", ["paused", "saved"])
def test_scale_up_takes_the_parked_domain_and_the_pool_refills(
    make_service: ServiceFactory, libvirt_group: str, kind: str
) -> None:
    """A paused pool keeps the VM suspended in memory; a saved pool keeps it on disk with no QEMU
    process at all. Either way a scale-up resumes that very domain, which then serves."""
    svc = make_service(warm_pool={"size": 1, "kind": kind})
    svc.controller.set_paused(True, "test")  # only the test moves the count
    first = f"{libvirt_group}-1"
    wait_until(lambda: instance_state(svc, first) == "ready", "the first VM ready", BOOT_S, poll_s=0.5)
    parked: str = wait_until(
        lambda: next((i.name for i in svc.controller.instances() if i.state == "warm"), ""),
        "a VM parked in the pool",
        BOOT_S,
        poll_s=0.5,
    )
    state = virsh("domstate", parked).strip()
    if kind == "paused":
        assert state == "paused", state
        assert qemu_process(parked) is not None
    else:
        assert state == "shut off", state
        assert "yes" in virsh("dominfo", parked).split("Managed save:")[1].splitlines()[0]
        assert qemu_process(parked) is None, "a saved pool holds no memory: no QEMU process"

    svc.controller.set_desired(2, "test")
    wait_until(lambda: instance_state(svc, parked) == "ready", f"{parked} resumed and ready", 60, poll_s=0.5)
    url = next(e["url"] for e in svc.controller.endpoints() if e["name"] == parked)
    with httpx.Client(timeout=30, trust_env=False) as client:
        body = client.get(f"{url}/fib/10").json()
    assert body == {"input": 10, "result": 55, "server": parked}
    assert {i.name for i in svc.controller.instances() if i.state == "ready"} == {first, parked}

    refill = wait_until(
        lambda: next((i.name for i in svc.controller.instances() if i.state == "warm"), ""),
        "the pool refilled with a new VM",
        BOOT_S,
        poll_s=0.5,
    )
    assert refill not in (first, parked)
    assert svc.controller.group().actual == 2, "the refill is not counted as capacity"


def test_killed_qemu_is_marked_failed_and_replaced(
    make_service: ServiceFactory, libvirt_group: str, libvirt_state_dir: Path
) -> None:
    svc = make_service()
    # Automatic decisions off (an empty policy list means the default cpu target, and a VM that
    # has just booted can read above it): the count stays at 1 unless something breaks.
    svc.controller.set_paused(True, "e2e test")
    victim = f"{libvirt_group}-1"
    wait_until(lambda: instance_state(svc, victim) == "ready", "the first VM ready", BOOT_S, poll_s=0.5)
    qemu = qemu_process(victim)
    assert qemu is not None, f"no qemu process with guest={victim} on its command line"
    qemu.kill()
    qemu.wait(10)

    def replacement() -> str | None:
        ready = [i.name for i in svc.controller.instances() if i.state == "ready"]
        return ready[0] if ready and victim not in ready else None

    new = wait_until(replacement, "a replacement ready", BOOT_S, poll_s=0.5)
    log = events(libvirt_state_dir / "autoscaler.jsonl")
    failed = [e["data"] for e in log if e["type"] == "instance" and e["data"]["to"] == "failed"]
    assert [f["name"] for f in failed] == [victim], failed
    assert "vanished" in failed[0]["reason"]
    wait_until(lambda: victim not in domains(libvirt_group), "the dead domain removed", 60, poll_s=0.5)
    assert domains(libvirt_group) == {new}
    assert overlays(libvirt_state_dir) == {f"{new}.qcow2"}
    group = svc.controller.group()
    assert (group.desired, group.actual, group.ready) == (1, 1, 1)
    assert httpx.get(f"{svc.controller.endpoints()[0]['url']}/healthz", timeout=5).json()["server"] == new
