"""Capacity within a second, at the controller level with real TCG guests (issue 17):

* vertical-first: under queued requests the controller hot-adds a vCPU to the serving VM before it
  launches anything (and its balloon gives the guest the memory of that size), and only when that
  VM is at ``max_vcpus`` does a second domain appear (libvirt checked with ``virsh vcpucount`` and
  ``dommemstat``, the controller through its API);
* snapshot clones: a group with ``launch = "clone"`` prepares its golden at start, scales 1 -> 2 by
  restoring a clone that answers with its own name, and ``vmscale down`` leaves nothing behind.

Behaviour only, never timings (those are in BENCHMARKS.md). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.libvirt_support import QUEUE_POLICY, domains, group_config, to_toml, virsh
from tests.e2e.test_libvirt_autoscale import BOOT_S, ServiceFactory, instance_state, make_service
from tests.e2e.test_libvirt_capacity import servers
from tests.support.closed_loop import ClosedLoop
from tests.support.wait import wait_until
from vmscale.bench.runner import measure_request
from vmscale.service import Service

__all__ = ["make_service"]  # the fixture, shared with the autoscale tests

LOAD_LIMIT_S = 240.0


def resize_events(svc: Service, stage: str) -> list[dict[str, Any]]:
    found = svc.events.recent(["resize"], limit=5000)
    return [{**e.data, "t": e.t} for e in found if e.data["stage"] == stage]


def first_transition(svc: Service, name: str) -> float:
    return next(e.t for e in svc.events.recent(["instance"], limit=5000) if e.data["name"] == name)


def vcpucount(name: str) -> int:
    return int(virsh("vcpucount", name, "--live", "--active").strip())


def balloon_mib(name: str) -> int:
    """The memory the guest has, as its balloon driver reports it to QEMU (``actual``)."""
    stats = dict(line.split() for line in virsh("dommemstat", name).splitlines() if line.strip())
    return int(stats["actual"]) // 1024


def test_the_vertical_first_policy_resizes_before_it_launches(
    make_service: ServiceFactory, libvirt_group: str
) -> None:
    svc = make_service(
        max_count=2,
        template={"vcpus": 1, "max_vcpus": 2, "memory_mb": 512, "max_memory_mb": 768},
        scaling={"mode": "vertical-first"},
        policies=[QUEUE_POLICY],
    )
    first, second = f"{libvirt_group}-1", f"{libvirt_group}-2"
    wait_until(lambda: instance_state(svc, first) == "ready", "the first VM ready", BOOT_S, poll_s=0.5)
    assert vcpucount(first) == 1
    wait_until(
        lambda: balloon_mib(first) == 512, "the guest's balloon to hold it at memory_mb", 60, poll_s=0.5
    )
    url = svc.controller.endpoints()[0]["url"]
    n, _ = measure_request(url, 0.4, 35, reps=3)
    # Six clients back to back keep six requests in flight whatever the capacity: 6 per vCPU on one,
    # 3 on two, so the group first grows the VM, then (at its max) adds one.
    with ClosedLoop(f"{url}/fib/{n}", clients=6, limit_s=LOAD_LIMIT_S, timeout_s=120) as load:
        wait_until(lambda: resize_events(svc, "serving"), "the hot-added vCPU to serve", 120, poll_s=0.2)
        assert vcpucount(first) == 2, "libvirt shows the vCPU hot-added"
        assert {i.name: i.vcpus for i in svc.controller.instances()} == {first: 2}, "and the API"
        health = httpx.get(f"{url}/healthz", timeout=10, trust_env=False).json()
        assert (health["cpus"], health["workers"]) == (2, 2), "the guest runs on both"
        # Memory follows the vCPUs: at max_vcpus the balloon gives the guest max_memory_mb.
        wait_until(
            lambda: balloon_mib(first) == 768, "the guest's balloon to deflate to 768 MiB", 60, poll_s=0.5
        )
        assert domains(libvirt_group) == {first}, "grown, nothing launched yet"
        wait_until(lambda: second in domains(libvirt_group), "a second domain at max_vcpus", 120, poll_s=0.5)
        wait_until(lambda: instance_state(svc, second) == "ready", "the second VM ready", BOOT_S, poll_s=0.5)
    # Under the load the second VM may itself be grown once it serves (two per vCPU is still over
    # the threshold): its size at launch is the first resize's starting size, if there was one.
    grown = [e for e in resize_events(svc, "started") if e["name"] == second]
    at_launch = grown[0]["from"] if grown else vcpucount(second)
    assert at_launch == 1, "new instances start at the template's size"
    assert load.answers and load.failed == 0, f"{load.failed} requests failed"
    started = resize_events(svc, "started")
    assert started[0]["name"] == first and (started[0]["from"], started[0]["to"]) == (1, 2)
    assert started[0]["t"] < first_transition(svc, second), "the resize came before the launch"
    codes = [d.get("placement") for d in svc.controller.decisions(limit=50) if d.get("actor") == "autoscaler"]
    assert codes[:2] == ["resize-up", "add/at-max-vcpus"], codes


def test_a_clone_group_scales_out_with_a_clone_that_answers_with_its_own_name(
    make_service: ServiceFactory, libvirt_group: str, libvirt_state_dir: Path, guest_image: Path
) -> None:
    svc = make_service(
        libvirt={"launch": "clone"},
        health={"timeout_s": 2.0, "boot_timeout_s": 240, "unhealthy_threshold": 3},
    )
    first, second = f"{libvirt_group}-1", f"{libvirt_group}-2"
    golden_root = libvirt_state_dir / "libvirt" / "golden" / libvirt_group
    wait_until(lambda: instance_state(svc, first) == "ready", "the first clone ready", 300, poll_s=0.5)
    assert any((d / "memory.sav").is_file() for d in golden_root.iterdir()), "the golden was made"
    assert f"{libvirt_group}-golden" not in virsh("list", "--all", "--name").split()

    svc.controller.set_desired(2, "test")
    wait_until(lambda: instance_state(svc, second) == "ready", "the second clone ready", BOOT_S, poll_s=0.2)
    url = next(e["url"] for e in svc.controller.endpoints() if e["name"] == second)
    assert servers(url) == {second}, "the clone answers with its own name, never the golden's"
    info = {i.name: i for i in svc.controller.instances()}
    assert info[second].details["golden"] == info[first].details["golden"], "both restored from it"
    golden = svc.controller.group().golden  # what `vmscale status` shows under "clones from"
    assert golden is not None and golden["state"] == "ready", golden
    assert golden["key"] == info[first].details["golden"]
    saved = (golden_root / golden["key"] / "memory.sav").stat().st_size / 2**20
    assert golden["size_mb"] == round(saved, 1) and golden["boot_s"] > 0, golden
    assert "token" not in golden, "the identity token never leaves the provider"
    assert [e.data["stage"] for e in svc.events.recent(["golden"], limit=100)] == ["making", "ready"]
    assert domains(libvirt_group, running_only=True) == {first, second}

    svc.stop(terminate=True)
    config = libvirt_state_dir / "group.toml"
    config.write_text(
        to_toml(
            group_config(
                group=libvirt_group,
                state_dir=libvirt_state_dir,
                image_dir=guest_image,
                libvirt={"launch": "clone"},
            )
        )
    )
    down = subprocess.run(
        [sys.executable, "-m", "vmscale", "down", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert not golden_root.exists(), "vmscale down removes the group's golden snapshot"
    assert domains(libvirt_group) == set()
    leftovers = list((libvirt_state_dir / "libvirt").rglob("*.sav"))
    leftovers += list((libvirt_state_dir / "libvirt").rglob("*.qcow2"))
    assert leftovers == [], f"save images or overlays left behind: {leftovers}"
