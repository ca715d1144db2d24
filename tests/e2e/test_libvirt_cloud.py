"""A libvirt group booted from a cloud-init disk image, serving a service of its own (issue 14).

The image is the one ``vmscale image build --kind cloud`` makes from Debian's packages (a real
partitioned disk: BIOS, syslinux, the image's own kernel, systemd, cloud-init). The group's
user-data (examples/own-service/user-data.yaml) writes a systemd unit for ``python3 -m
http.server`` and a health file, and starts it: nothing of vmscale runs in the guest. vmscale must
health-check it, put it behind HAProxy and scale it 1 -> 2; stopping the group leaves no domain,
overlay or seed ISO behind.

At most two TCG guests boot. Traffic goes only to 127.0.0.1 (HAProxy's front and the VMs' port
forwards).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO
from tests.e2e.libvirt_support import destroy_group, domains, group_config, keep_logs, virsh
from tests.integration.haproxy_support import free_port
from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.errors import LoadBalancerError
from vmscale.lb.haproxy import HaproxyLoadBalancer
from vmscale.service import Service

# cloud-init under TCG: ~1-3 min from power-on to the service answering on a quiet 2-core host
# (BENCHMARKS.md, "cloud image boot"), several times that when other guests share the cores.
BOOT_TIMEOUT_S = 600.0
# The user-data a user starts from (README, "Scale your own service"): python3's own HTTP server
# over a folder with a health file, as a systemd unit; it also writes the VM's hostname to /whoami.
USER_DATA = REPO / "examples" / "own-service" / "user-data.yaml"


@pytest.fixture
def cloud_service(
    libvirt_daemons: str, cloud_image: Path, libvirt_state_dir: Path, libvirt_group: str
) -> Iterator[tuple[Service, Callable[[], None]]]:
    """A started, paused Service on a cloud-image group, and an idempotent stop for it."""
    user_data = libvirt_state_dir / "user-data.yaml"  # a copy: the QEMU user must not need the repo
    user_data.write_text(USER_DATA.read_text())
    data: dict[str, Any] = group_config(
        group=libvirt_group, state_dir=libvirt_state_dir, image_dir=libvirt_state_dir, max_count=2
    )
    data["provider"]["libvirt"].update(boot="disk", cloud_image=str(cloud_image), user_data=str(user_data))
    data["health"] = {"path": "/healthz", "timeout_s": 3.0, "unhealthy_threshold": 5,
                      "boot_timeout_s": BOOT_TIMEOUT_S}  # fmt: skip
    data["lb"] = {
        "kind": "haproxy",
        "haproxy": {"bind": f"127.0.0.1:{free_port()}", "stats_bind": f"127.0.0.1:{free_port()}"},
    }
    svc = Service(parse_config(data, "cloud image e2e"), log_path=libvirt_state_dir / "autoscaler.jsonl")
    stopped: list[bool] = []

    def stop() -> None:
        if not stopped:
            stopped.append(True)
            svc.stop(terminate=True)

    try:
        svc.start()
        svc.controller.set_paused(True, "test")  # only the test moves the count
        yield svc, stop
    finally:
        try:
            stop()
        finally:
            keep_logs(libvirt_state_dir, libvirt_group)
            destroy_group(libvirt_group, libvirt_state_dir)


def ready(svc: Service) -> dict[str, str]:
    return {i.name: i.endpoint for i in svc.controller.instances() if i.state == "ready"}


def in_haproxy(svc: Service, count: int) -> bool:
    names = set(ready(svc))
    if len(names) != count or len(svc.controller.instances()) != count:
        return False
    assert isinstance(svc.lb, HaproxyLoadBalancer)
    try:
        return set(svc.lb.api.servers_state(svc.cfg.group.name)) == names
    except LoadBalancerError:
        return False


def test_cloud_image_group_serves_its_own_service_and_scales(
    cloud_service: tuple[Service, Callable[[], None]], libvirt_group: str, libvirt_state_dir: Path
) -> None:
    svc, stop = cloud_service
    t0 = time.monotonic()
    wait_until(
        lambda: in_haproxy(svc, 1), "the first VM's own service to be ready", BOOT_TIMEOUT_S, poll_s=2.0
    )
    first_boot_s = time.monotonic() - t0
    [(first, endpoint)] = ready(svc).items()
    assert httpx.get(f"{endpoint}/healthz", timeout=10).text == "ok\n", "the health file of the user-data"
    assert httpx.get(f"{endpoint}/whoami", timeout=10).text.strip() == first, "hostname from meta-data"
    assert "vmscale" not in httpx.get(f"{endpoint}/", timeout=10).text, "not vmscale's backend"

    domain_xml = virsh("dumpxml", first)
    assert "<boot dev='hd'/>" in domain_xml and "<kernel>" not in domain_xml, "booted by its own bootloader"
    assert "device='cdrom'" in domain_xml, "cloud-init's seed ISO is attached"

    svc.controller.set_desired(2, "test")
    wait_until(lambda: in_haproxy(svc, 2), "two VMs ready, both in HAProxy", BOOT_TIMEOUT_S, poll_s=2.0)
    names = set(ready(svc))
    assert isinstance(svc.lb, HaproxyLoadBalancer)
    front = svc.lb.frontend_url()
    seen: dict[str, int] = {}

    def both_answered() -> bool:  # bounded: one request per poll, at most BOOT_TIMEOUT_S / 0.5 of them
        who = httpx.get(f"{front}/whoami", timeout=10)
        assert who.status_code == 200, who.text
        seen[who.text.strip()] = seen.get(who.text.strip(), 0) + 1
        return set(seen) == names

    wait_until(both_answered, "requests through HAProxy to reach both VMs", 120, poll_s=0.5)
    console = (libvirt_state_dir / "libvirt/console" / f"{first}.log").read_text(errors="replace")
    assert "Cloud-init v." in console and "finished" in console, "cloud-init ran to its end"
    print(f"first VM ready after {first_boot_s:.0f} s; requests per VM through HAProxy: {seen}")

    stop()
    assert domains(libvirt_group) == set(), "every domain of the group is gone"
    leftovers = [p for sub in ("overlays", "seeds") for p in (libvirt_state_dir / "libvirt" / sub).glob("*")]
    assert leftovers == [], f"files left behind: {leftovers}"
