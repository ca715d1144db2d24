"""The generated domain XML: valid for libvirt's schema, right domain type, metadata round trip."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from vmscale.providers.libvirt.xml import (
    QEMU_NS,
    VMSCALE_NS,
    DomainSpec,
    InstanceMeta,
    build_domain_xml,
    kernel_cmdline,
    parse_metadata,
)

META = InstanceMeta(group="web", name="web-2", index=2, port=18202, created_at=1700000000.5)
SPEC = DomainSpec(
    meta=META,
    domain_type="qemu",
    vcpus=2,
    memory_mb=768,
    disk_path="/var/lib/vmscale/instances/x/overlays/web-2.qcow2",
    console_log="/var/lib/vmscale/instances/x/console/web-2.log",
    kernel="/var/lib/vmscale/image/vmlinuz",
    initrd="/var/lib/vmscale/image/initrd.img",
    kernel_args={"fib_max_n": "35"},
    host_port=18202,
)

# Bridged, with an address vmscale assigned (provider.libvirt.addresses)
STATIC = replace(
    SPEC,
    meta=replace(META, address="198.51.100.7"),
    network="bridge",
    host_port=0,
    mac="52:54:c6:33:64:07",
    address="198.51.100.7/16",
    gateway="198.51.0.1",
)


def validate(tmp_path: Path, document: str) -> None:
    tool = shutil.which("virt-xml-validate")
    if tool is None:
        pytest.fail("virt-xml-validate is missing: apt-get install libvirt-clients")
    path = tmp_path / "domain.xml"
    path.write_text(document)
    result = subprocess.run([tool, str(path), "domain"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(SPEC, id="tcg-kernel-user"),
        pytest.param(replace(SPEC, domain_type="kvm"), id="kvm-kernel-user"),
        pytest.param(replace(SPEC, network="network", host_port=0), id="libvirt-network"),
        pytest.param(replace(SPEC, network="bridge", bridge="br7", host_port=0), id="bridge"),
        pytest.param(STATIC, id="bridge-static-address"),
        pytest.param(
            replace(SPEC, boot="disk", kernel="", initrd="", seed_iso="/var/lib/vmscale/x/seeds/web-2.iso"),
            id="cloud-image-with-seed",
        ),
        pytest.param(replace(SPEC, vcpus=1, max_vcpus=4), id="room-to-grow"),
        pytest.param(
            replace(SPEC, vcpus=1, max_vcpus=4, memory_mb=256, max_memory_mb=1024), id="memory-room"
        ),
    ],
)
def test_generated_xml_passes_libvirt_schema(tmp_path: Path, spec: DomainSpec) -> None:
    validate(tmp_path, build_domain_xml(spec))


@pytest.mark.parametrize(("domain_type", "cpu_mode"), [("qemu", None), ("kvm", "host-passthrough")])
def test_domain_type_follows_accelerator(domain_type: str, cpu_mode: str | None) -> None:
    root = ET.fromstring(build_domain_xml(replace(SPEC, domain_type=domain_type)))  # type: ignore[arg-type]
    assert root.get("type") == domain_type
    cpu = root.find("cpu")
    assert (cpu.get("mode") if cpu is not None else None) == cpu_mode


def test_user_networking_forwards_loopback_port_to_guest_in_a_fixed_slot() -> None:
    root = ET.fromstring(build_domain_xml(SPEC))
    args = [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]
    assert args == [
        "-netdev",
        "user,id=vmnet0,hostfwd=tcp:127.0.0.1:18202-:8000",
        "-device",
        "virtio-net-pci,netdev=vmnet0,bus=pci.0,addr=0x9",
    ]
    slots = [a.get("slot") for a in root.iter("address")]
    assert "0x09" not in slots and len(slots) == len(set(slots))  # nothing else takes the NIC's slot
    assert root.find("devices/interface") is None


def test_real_network_modes_use_a_libvirt_interface_not_a_port_forward() -> None:
    root = ET.fromstring(build_domain_xml(replace(SPEC, network="bridge", bridge="br7")))
    assert root.find(f"{{{QEMU_NS}}}commandline") is None
    iface = root.find("devices/interface")
    assert iface is not None and iface.get("type") == "bridge"
    assert iface.find("source").get("bridge") == "br7"  # type: ignore[union-attr]
    assert "vmscale.net=dhcp" in root.findtext("os/cmdline", "")


def test_direct_kernel_boot_carries_instance_options_and_console_goes_to_file() -> None:
    root = ET.fromstring(build_domain_xml(SPEC))
    assert root.findtext("os/kernel") == SPEC.kernel and root.findtext("os/initrd") == SPEC.initrd
    cmdline = root.findtext("os/cmdline", "")
    for opt in ("vmscale.name=web-2", "vmscale.workers=2", "vmscale.fib_max_n=35", "console=ttyS0,115200"):
        assert opt in cmdline.split()
    assert root.find("devices/serial/source").get("path") == SPEC.console_log  # type: ignore[union-attr]
    assert root.findtext("memory") == "768" and root.findtext("vcpu") == "2"


def test_disk_boot_has_no_kernel_and_attaches_the_seed_read_only() -> None:
    spec = replace(SPEC, boot="disk", seed_iso="/s/web-2.iso")
    root = ET.fromstring(build_domain_xml(spec))
    assert root.find("os/kernel") is None and root.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]
    (cdrom,) = [d for d in root.iter("disk") if d.get("device") == "cdrom"]
    assert cdrom.find("source").get("file") == "/s/web-2.iso" and cdrom.find("readonly") is not None  # type: ignore[union-attr]


def test_metadata_round_trips_from_full_xml_and_from_get_metadata_form() -> None:
    assert parse_metadata(build_domain_xml(SPEC)) == META
    bare = '<instance group="web" name="web-2" index="2" port="18202" created="1700000000.500"/>'
    assert parse_metadata(bare) == META
    root = ET.fromstring(build_domain_xml(SPEC))
    assert root.find(f"metadata/{{{VMSCALE_NS}}}instance") is not None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("<domain type='qemu'><name>other</name></domain>", id="foreign-domain"),
        pytest.param("<instance group='web'/>", id="incomplete"),
        pytest.param("<instance group='web' name='w' index='x' port='1'/>", id="bad-number"),
        pytest.param("not xml <", id="garbage"),
    ],
)
def test_metadata_of_foreign_or_broken_domains_is_none(text: str) -> None:
    assert parse_metadata(text) is None


@pytest.mark.parametrize(
    "extra",
    [{"fib_max_n": "35 init=/bin/sh"}, {"Bad-Key": "1"}, {"x": "a\nb"}],
    ids=["value-injects-param", "bad-key", "newline"],
)
def test_kernel_options_cannot_inject_kernel_parameters(extra: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unsafe guest option"):
        kernel_cmdline("web-1", 1, 8000, extra, dhcp=False)


def test_user_networking_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="host port"):
        build_domain_xml(replace(SPEC, host_port=0))


def test_static_address_goes_to_the_guest_the_nic_and_the_metadata() -> None:
    """A vmscale-assigned address: the guest sets it itself, the NIC's MAC is fixed, and the
    metadata carries it so a migrated domain is found at the same address on its new host."""
    document = build_domain_xml(STATIC)
    root = ET.fromstring(document)
    cmdline = root.findtext("os/cmdline", "").split()
    for opt in ("vmscale.net=static", "vmscale.ip=198.51.100.7/16", "vmscale.gw=198.51.0.1"):
        assert opt in cmdline
    assert root.find("devices/interface/mac").get("address") == "52:54:c6:33:64:07"  # type: ignore[union-attr]
    meta = parse_metadata(document)
    assert meta is not None and meta.address == "198.51.100.7"


def test_without_an_address_bridged_guests_ask_dhcp_and_metadata_has_none() -> None:
    document = build_domain_xml(replace(SPEC, network="bridge", host_port=0))
    assert "vmscale.net=dhcp" in ET.fromstring(document).findtext("os/cmdline", "")
    assert "address=" not in document
    assert parse_metadata(document) == META


@pytest.mark.parametrize(
    ("vcpus", "max_vcpus", "text", "current"),
    [
        pytest.param(2, 0, "2", None, id="no-room-by-default"),
        pytest.param(2, 2, "2", None, id="max-equal-is-no-room"),
        pytest.param(1, 4, "4", "1", id="room-to-grow-to-four"),
    ],
)
def test_vcpu_element_gives_room_to_grow(vcpus: int, max_vcpus: int, text: str, current: str | None) -> None:
    root = ET.fromstring(build_domain_xml(replace(SPEC, vcpus=vcpus, max_vcpus=max_vcpus)))
    vcpu = root.find("vcpu")
    assert vcpu is not None and vcpu.text == text and vcpu.get("current") == current


def test_max_vcpus_below_vcpus_is_refused() -> None:
    with pytest.raises(ValueError, match="max_vcpus"):
        build_domain_xml(replace(SPEC, vcpus=2, max_vcpus=1))


@pytest.mark.parametrize(
    ("vcpus", "max_vcpus", "shares"),
    [
        pytest.param(1, 0, None, id="one-fixed-vcpu-keeps-libvirts-default"),
        pytest.param(1, 4, "1024", id="room-to-grow-weighs-its-vcpus"),
        pytest.param(2, 0, "2048", id="two-vcpus-weigh-twice"),
    ],
)
def test_cpu_weight_follows_the_vcpus(vcpus: int, max_vcpus: int, shares: str | None) -> None:
    root = ET.fromstring(build_domain_xml(replace(SPEC, vcpus=vcpus, max_vcpus=max_vcpus)))
    assert root.findtext("cputune/shares") == shares


def test_the_launching_controllers_epoch_is_kept_in_the_metadata() -> None:
    """A controller that lost leadership must see a newer leader's domains as such (issue 16)."""
    spec = replace(SPEC, meta=replace(META, epoch=7))
    assert parse_metadata(build_domain_xml(spec)) == replace(META, epoch=7)
    older = build_domain_xml(SPEC).replace(' epoch="0"', "")  # written before epochs existed
    assert 'epoch="' not in older and parse_metadata(older) == replace(META, epoch=0)


def test_memory_room_is_a_balloon_and_no_room_is_no_balloon() -> None:
    grown = ET.fromstring(build_domain_xml(replace(SPEC, memory_mb=512, max_memory_mb=1024)))
    assert (grown.findtext("memory"), grown.findtext("currentMemory")) == ("1024", "512")
    balloon = grown.find("devices/memballoon")
    assert balloon is not None and balloon.get("model") == "virtio"
    fixed = ET.fromstring(build_domain_xml(replace(SPEC, memory_mb=512, max_memory_mb=512)))
    assert (fixed.findtext("memory"), fixed.find("currentMemory")) == ("512", None)
    none = fixed.find("devices/memballoon")
    assert none is not None and none.get("model") == "none", "one device less to emulate at boot"
    with pytest.raises(ValueError, match="max_memory_mb"):
        build_domain_xml(replace(SPEC, memory_mb=512, max_memory_mb=256))
