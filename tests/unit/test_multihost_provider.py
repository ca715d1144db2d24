"""MultiHostProvider's bookkeeping over two fake hosts: libvirt's test driver, one private instance per
host (a custom node XML: its own domains and storage pools), with the memory figures a real host
reports and the test driver does not. Real daemons and guests: tests/e2e/test_multihost.py."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import pytest

from vmscale.config import parse_config
from vmscale.errors import HostUnreachableError, NoHeadroomError, PermanentProviderError
from vmscale.hosts.inventory import HostInventory
from vmscale.hosts.multihost import MultiHostProvider
from vmscale.plan.placement import Placement
from vmscale.providers.base import InstanceSpec, ProviderStatus, Resizer
from vmscale.providers.libvirt.connection import LibvirtConnection
from vmscale.providers.libvirt.storage import _find_or_make_pool, image_pool_name

NODE = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores>
  <threads>1</threads><active>4</active></cpu>
  <memory>8388608</memory>
</node>"""
DEAD = "qemu+unix:///system?socket=/nonexistent/vmscale-test.sock"


class _WithMemory:
    """A test-driver connection that answers ``getMemoryStats`` like a real host with free memory."""

    def __init__(self, conn: libvirt.virConnect, free_kib: int) -> None:
        self._conn = conn
        self._free_kib = free_kib

    def getMemoryStats(self, _cell: int, _flags: int = 0) -> dict[str, int]:
        return {"total": 8388608, "free": self._free_kib, "buffers": 0, "cached": 0}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class FakeHostConnection(LibvirtConnection):
    def __init__(self, uri: str, timeout_s: float, free_kib: int = 6 * 2**20) -> None:
        super().__init__(uri, timeout_s)
        self.free_kib = free_kib

    def _get(self) -> libvirt.virConnect:
        conn = super()._get()
        return conn if self.uri == DEAD else _WithMemory(conn, self.free_kib)  # type: ignore[return-value]


@pytest.fixture
def cluster(tmp_path: Path, image_dir: Path) -> dict[str, Any]:
    hosts = []
    for name in ("h1", "h2"):
        node = tmp_path / f"{name}.xml"
        node.write_text(NODE)
        hosts.append({"name": name, "uri": f"test://{node}"})
    group = "g" + uuid.uuid4().hex[:6]
    return {
        "group": {"name": group},
        "provider": {
            "kind": "libvirt",
            "libvirt": {
                "accel": "tcg",
                "image_dir": str(image_dir),
                "network": "bridge",
                "addresses": {"pool": "198.51.100.0/24"},
                "call_timeout_s": 5.0,
            },
        },
        "cluster": {"hosts": hosts, "reconnect_initial_s": 30.0},
    }


def open_provider(
    config: dict[str, Any], *, with_image: tuple[str, ...] = ("h1", "h2"), max_vcpus: int | None = None
) -> MultiHostProvider:
    cfg = parse_config(config)
    inventory = HostInventory.from_config(cfg, connect=lambda h, t: FakeHostConnection(h.uri, t))
    folder = cfg.provider.libvirt.image_dir

    def put(conn: libvirt.virConnect) -> None:  # the image "copied" to a host: its image pool's volumes
        pool = _find_or_make_pool(conn, image_pool_name(folder), folder)
        for f in ("base.qcow2", "vmlinuz", "initrd.img"):
            pool.createXML(f"<volume><name>{f}</name><capacity unit='bytes'>67108864</capacity></volume>", 0)

    for host in with_image:
        inventory.connection(host).call("put image", put)
    return MultiHostProvider(
        cfg.provider.libvirt, inventory, placement=cfg.cluster.placement, max_vcpus=max_vcpus
    )


def spec(group: str, index: int) -> InstanceSpec:
    return InstanceSpec(group=group, name=f"{group}-{index}", index=index, vcpus=1, memory_mb=512)


def test_launch_spreads_over_hosts_and_each_instance_knows_its_host_and_address(
    cluster: dict[str, Any],
) -> None:
    group = cluster["group"]["name"]
    provider = open_provider(cluster)
    decisions: list[Placement] = []
    provider.on_placement = decisions.append
    made = [provider.launch(spec(group, i)) for i in (1, 2, 3)]
    assert [i.details["host"] for i in made] == ["h1", "h2", "h1"]
    assert decisions[1].reason == f"{group}-2 on h2: spread, h2 has 0 of the group, h1 has 1"
    listed = provider.list(group)
    assert [(i.name, i.details["host"], i.status) for i in listed] == [
        (f"{group}-1", "h1", ProviderStatus.RUNNING),
        (f"{group}-3", "h1", ProviderStatus.RUNNING),
        (f"{group}-2", "h2", ProviderStatus.RUNNING),
    ]
    assert listed[2].endpoint == "http://198.51.100.2:8000"
    # on the host: the overlay is a volume of its vmscale pool, the NIC's MAC encodes the address
    domain_xml = provider.inventory.connection("h2").call(
        "xml", lambda c: c.lookupByName(f"{group}-2").XMLDesc(0)
    )
    root = ET.fromstring(domain_xml)
    assert root.find("devices/interface/mac").get("address") == "52:54:c6:33:64:02"  # type: ignore[union-attr]
    assert root.find("devices/disk/source").get("file") == f"/var/lib/libvirt/images/vmscale/{group}-2.qcow2"  # type: ignore[union-attr]
    assert provider.host_provider("h2").storage.exists(f"{group}-2.qcow2")
    provider.terminate(f"{group}-2", graceful_timeout_s=0)
    assert not provider.host_provider("h2").storage.exists(f"{group}-2.qcow2")
    assert [i.name for i in provider.list(group)] == [f"{group}-1", f"{group}-3"]
    provider.close()


def test_a_resize_goes_to_the_instances_host_and_is_checked_against_that_hosts_headroom(
    cluster: dict[str, Any],
) -> None:
    """Vertical-first over hosts: each domain has the template's room to grow on whichever host it
    is; a growth past its own host's vCPU limit is refused there (h1: 4 CPUs x 0.75 = 3 vCPUs)."""
    cluster["cluster"]["hosts"][0]["max_vcpu_overcommit"] = 0.75
    group = cluster["group"]["name"]
    provider = open_provider(cluster, max_vcpus=4)
    assert isinstance(provider, Resizer) and provider.can_shrink is False
    one, two = (provider.launch(spec(group, i)) for i in (1, 2))
    assert (one.details["host"], two.details["host"]) == ("h1", "h2")

    def vcpus_on(host: str, name: str) -> int:
        return int(
            provider.inventory.connection(host).call("vcpus", lambda c: c.lookupByName(name).info()[3])
        )

    provider.resize(one.name, 3)
    with pytest.raises(
        NoHeadroomError, match=r"from 3 to 4 vCPUs: host CPU: 3 vCPUs running \+ 1 would exceed 3"
    ):
        provider.resize(one.name, 4)
    provider.resize(two.name, 4)  # h2 keeps the default limit (16)
    assert (vcpus_on("h1", one.name), vcpus_on("h2", two.name)) == (3, 4)
    assert {i.name: i.vcpus for i in provider.list(group)} == {one.name: 3, two.name: 4}
    provider.close()


def test_launch_of_an_existing_name_adopts_it_where_it_is(cluster: dict[str, Any]) -> None:
    group = cluster["group"]["name"]
    provider = open_provider(cluster)
    provider.launch(spec(group, 1), "h2")
    again = provider.launch(spec(group, 1), "h1")
    assert again.details["host"] == "h2"
    assert provider.host_provider("h1")._lookup(f"{group}-1") is None
    provider.close()


def test_a_host_without_the_image_is_named_with_the_missing_files(cluster: dict[str, Any]) -> None:
    group = cluster["group"]["name"]
    provider = open_provider(cluster, with_image=("h1",))
    with pytest.raises(
        PermanentProviderError, match=r"host h2 lacks the guest image files base\.qcow2, vmlinuz"
    ):
        provider.launch(spec(group, 1), "h2")
    provider.close()


def test_instances_of_a_host_that_stops_answering_are_unknown_and_never_started_twice(
    cluster: dict[str, Any],
) -> None:
    group = cluster["group"]["name"]
    provider = open_provider(cluster)
    provider.launch(spec(group, 1), "h1")
    provider.launch(spec(group, 2), "h2")
    provider.inventory.handle("h2").conn.conn = FakeHostConnection(DEAD, 5)  # h2's daemon is gone
    rows = {i.name: i for i in provider.list(group)}
    assert rows[f"{group}-2"].details["unknown"] == "true"
    assert rows[f"{group}-2"].details["host_state"] == "not answering"
    assert "unknown" not in rows[f"{group}-1"].details
    # a launch retry or a terminate of its instance must not touch another copy: it waits for h2
    with pytest.raises(HostUnreachableError, match=f"{group}-2 was last seen on host h2"):
        provider.launch(spec(group, 2))
    with pytest.raises(HostUnreachableError):
        provider.terminate(f"{group}-2", graceful_timeout_s=0)
    assert provider.host_provider("h1")._lookup(f"{group}-2") is None
    provider.close()


def test_two_copies_of_a_name_are_reported_once_with_the_other_for_fencing(cluster: dict[str, Any]) -> None:
    group = cluster["group"]["name"]
    provider = open_provider(cluster)
    provider.launch(spec(group, 1), "h1")
    provider.host_provider("h2").launch(spec(group, 1))  # a second copy, made behind the provider's back
    (only,) = provider.list(group)
    assert only.details["host"] == "h1" and only.details["duplicate_on"] == "h2"
    assert sorted(c.host for c in provider.copies(f"{group}-1")) == ["h1", "h2"]
    # the controller fences: it removes the copy the rule rejects, on its host only
    provider.terminate(f"{group}-1", graceful_timeout_s=0, host="h2")
    (only,) = provider.list(group)
    assert only.details["host"] == "h1" and "duplicate_on" not in only.details
    assert provider.copies(f"{group}-1") == ()
    provider.close()


def test_each_host_keeps_to_its_own_limits(cluster: dict[str, Any]) -> None:
    cluster["cluster"]["hosts"][1]["max_instances"] = 1
    provider = open_provider(cluster)
    group = cluster["group"]["name"]
    hosts = [provider.launch(spec(group, i)).details["host"] for i in (1, 2, 3, 4)]
    assert hosts == ["h1", "h2", "h1", "h1"]  # spread would alternate; h2 is full after one
    provider.close()


def test_pause_resume_and_samples_go_to_the_instances_host(cluster: dict[str, Any]) -> None:
    group = cluster["group"]["name"]
    provider = open_provider(cluster)
    provider.launch(spec(group, 1), "h1")
    provider.launch(spec(group, 2), "h2")
    provider.pause(f"{group}-2")
    assert {i.name: i.status for i in provider.list(group)} == {
        f"{group}-1": ProviderStatus.RUNNING,
        f"{group}-2": ProviderStatus.PAUSED,
    }
    provider.resume(f"{group}-2")
    assert {i.status for i in provider.list(group)} == {ProviderStatus.RUNNING}
    names = [f"{group}-1", f"{group}-2"]
    assert provider.sample(names) == {}  # the first call of each host is a baseline
    assert set(provider.sample(names)) == set(names)  # both hosts asked, each for its own
    provider.close()
