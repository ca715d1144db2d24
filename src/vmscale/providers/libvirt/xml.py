"""The domain XML vmscale generates, and the metadata it reads back.

Pure functions over a frozen ``DomainSpec`` so the XML can be unit-tested (and validated with
``virt-xml-validate``) without libvirt.

Choices worth knowing:

* Machine ``pc`` (i440fx) with explicit PCI slots for every device vmscale adds.
* ``network = "user"``: the NIC comes through ``<qemu:commandline>`` (``-netdev user,hostfwd=...``),
  because libvirt's own declaration does not work on this libvirt. Measured on Debian 12's libvirt
  9.0.0-4+deb12u2 with the ``passt`` package installed (``benchmarks/probe_user_nic.py``,
  BENCHMARKS.md "User-mode NIC"): ``<interface type='user'>`` with ``<backend type='passt'/>`` is
  refused at define ("Invalid value for attribute 'type' in element 'backend': 'passt'" — Debian
  builds bookworm's libvirt with passt support disabled, see its changelog, 9.0.0-2); without
  the backend (QEMU's SLIRP) ``<portForward>`` is accepted but silently not applied (no hostfwd, the
  port never answers). The passthrough forwards, survives ``virsh save``/``restore`` and
  ``managedsave`` (the warm pool's paths; it answers again within a second), and costs two things:
  the domain is tainted "custom-argv", and libvirt does not list the NIC (``domiflist`` is empty;
  ``domifaddr`` shows no address either way, as libvirt learns user-mode addresses only from a
  guest agent). A NIC added that way is also invisible to libvirt's address allocator, so it sits
  in a fixed slot (0x09) that nothing else uses. With a libvirt that has passt (upstream >= 9.0
  builds with it, e.g. Debian 13's), the declaration is ``<interface type='user'><backend
  type='passt'/><portForward proto='tcp' address='127.0.0.1'><range start='HOST' to='GUEST'/>
  </portForward></interface>``; switch to it after re-running the probe there. Live migration was not
  measured (one libvirtd here); a loopback forward is bound by the destination's QEMU, so it can
  only work towards another host, where the endpoint's address changes with it.
* ``network = "network"``/``"bridge"``: declared the libvirt way (``<interface type='network'|'bridge'>``).
* No USB, no graphics, and no balloon unless memory can grow: fewer devices to emulate means a
  faster TCG boot.
* Memory room (``max_memory_mb`` above ``memory_mb``, for vertical-first scaling): the domain is
  defined with ``<memory>`` at the maximum, ``<currentMemory>`` at the start size and a virtio
  balloon, so memory grows and shrinks live with the balloon's target (``resize.py``). The guest
  starts with the balloon inflated by the difference; QEMU touches guest memory lazily, so the room
  costs the host nothing until the balloon gives it to the guest.
* Room to grow: with ``max_vcpus`` above ``vcpus`` the domain is defined as
  ``<vcpu current='vcpus'>max_vcpus</vcpu>``, so vCPUs can be hot-added up to the maximum
  (``resize.py``) without a restart. Such a domain, or one of several vCPUs, also gets a CPU weight
  per vCPU (``<cputune><shares>``): libvirt gives every domain's cgroup the same weight (1024)
  whatever its vCPUs, so on a busy host a bigger VM would get no more CPU time than a small one.
* ``<metadata>`` in vmscale's own namespace names the group, instance, index, port and the epoch of
  the controller that launched it, so ``list`` finds vmscale's domains from libvirt alone after a
  restart, and a controller that lost leadership sees a newer leader's domains as such.
* On a bridged network with vmscale-assigned addresses (``provider.libvirt.addresses``, see
  ``addresses.py``) the NIC gets a MAC made from the address and the guest sets the address itself
  (kernel command line ``vmscale.net=static vmscale.ip=...``). The address is also in the metadata, so
  it travels with the domain when it is live-migrated to another host: the endpoint stays the same.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

VMSCALE_NS = "https://vmscale.dev/xmlns/instance/1"
VMSCALE_PREFIX = "vmscale"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
SHARES_PER_VCPU = 1024  # libvirt's (and cgroup v1's) default weight of one domain
NIC_PCI_SLOT = 0x09
DISK_PCI_SLOT = 0x04
RNG_PCI_SLOT = 0x05
BALLOON_PCI_SLOT = 0x06

ET.register_namespace(VMSCALE_PREFIX, VMSCALE_NS)
ET.register_namespace("qemu", QEMU_NS)

_CMDLINE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_CMDLINE_VALUE = re.compile(r"^[A-Za-z0-9._:/,=+-]{0,128}$")


@dataclass(frozen=True, slots=True)
class InstanceMeta:
    """What vmscale records in a domain's ``<metadata>``."""

    group: str
    name: str
    index: int
    port: int
    created_at: float = 0.0
    address: str = ""  # the guest's IPv4 address when vmscale assigned it (bridged networks)
    epoch: int = 0  # the launching controller's term of leadership (0: none recorded)


@dataclass(frozen=True, slots=True)
class DomainSpec:
    meta: InstanceMeta
    domain_type: Literal["kvm", "qemu"]
    vcpus: int
    memory_mb: int
    disk_path: str
    console_log: str
    boot: Literal["kernel", "disk"] = "kernel"
    kernel: str = ""
    initrd: str = ""
    kernel_args: Mapping[str, str] = field(default_factory=dict)
    seed_iso: str = ""
    network: Literal["user", "network", "bridge"] = "user"
    host_port: int = 0
    guest_port: int = 8000
    network_name: str = "default"
    bridge: str = "br0"
    mac: str = ""  # NIC MAC for network/bridge ('' = libvirt picks one)
    address: str = ""  # "A.B.C.D/LEN" the guest configures itself ('' = DHCP)
    gateway: str = ""
    max_vcpus: int = 0  # vCPUs the domain may grow to live (0 or vcpus: no room to grow)
    max_memory_mb: int = 0  # memory it may grow to by balloon (0 or memory_mb: no room, no balloon)


def kernel_cmdline(
    name: str,
    vcpus: int,
    guest_port: int,
    extra: Mapping[str, str],
    dhcp: bool,
    *,
    address: str = "",
    gateway: str = "",
) -> str:
    """The guest kernel command line: lean boot flags plus ``vmscale.KEY=VALUE`` options for the init.

    Keys and values are checked so nothing can inject another kernel parameter.
    """
    opts: dict[str, str] = {"name": name, "workers": str(vcpus), "port": str(guest_port)}
    opts["net"] = "static" if address else "dhcp" if dhcp else "user"
    if address:
        opts["ip"] = address
        if gateway:
            opts["gw"] = gateway
    for key, value in extra.items():
        opts[key] = str(value)
    for key, value in opts.items():
        if not _CMDLINE_KEY.match(key) or not _CMDLINE_VALUE.match(value):
            raise ValueError(f"unsafe guest option {key}={value!r}: keys [a-z0-9_], values without spaces")
    # Lean boot: no probing of hardware the guest never uses (extra UARTs, PS/2), no crypto self-tests
    # (slow under TCG), no mitigations (one tenant per VM), quiet serial console.
    base = (
        "console=ttyS0,115200 root=/dev/vda rw quiet loglevel=3 mitigations=off tsc=reliable no_timer_check"
        " 8250.nr_uarts=1 i8042.noaux i8042.nokbd i8042.nopnp cryptomgr.notests"
    )
    return base + "".join(f" vmscale.{k}={v}" for k, v in opts.items())


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _pci(parent: ET.Element, slot: int) -> None:
    _sub(parent, "address", type="pci", domain="0x0000", bus="0x00", slot=f"0x{slot:02x}", function="0x0")


def build_domain_xml(spec: DomainSpec) -> str:
    """The full ``<domain>`` document for ``spec``."""
    root = ET.Element("domain", {"type": spec.domain_type})
    _sub(root, "name", spec.meta.name)
    meta = _sub(root, "metadata")
    attrs = {
        "group": spec.meta.group,
        "name": spec.meta.name,
        "index": str(spec.meta.index),
        "port": str(spec.meta.port),
        "created": f"{spec.meta.created_at:.3f}",
        "epoch": str(spec.meta.epoch),
    }
    if spec.meta.address:
        attrs["address"] = spec.meta.address
    ET.SubElement(meta, f"{{{VMSCALE_NS}}}instance", attrs)
    if spec.max_memory_mb and spec.max_memory_mb < spec.memory_mb:
        raise ValueError(
            f"max_memory_mb ({spec.max_memory_mb}) must be at least memory_mb ({spec.memory_mb})"
        )
    balloon = spec.max_memory_mb > spec.memory_mb
    _sub(root, "memory", str(spec.max_memory_mb if balloon else spec.memory_mb), unit="MiB")
    if balloon:
        _sub(root, "currentMemory", str(spec.memory_mb), unit="MiB")
    if spec.max_vcpus and spec.max_vcpus < spec.vcpus:
        raise ValueError(f"max_vcpus ({spec.max_vcpus}) must be at least vcpus ({spec.vcpus})")
    if spec.max_vcpus > spec.vcpus:
        _sub(root, "vcpu", str(spec.max_vcpus), placement="static", current=str(spec.vcpus))
    else:
        _sub(root, "vcpu", str(spec.vcpus), placement="static")
    if spec.max_vcpus > spec.vcpus or spec.vcpus > 1:
        _sub(_sub(root, "cputune"), "shares", str(SHARES_PER_VCPU * spec.vcpus))
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    if spec.boot == "kernel":
        _sub(os_el, "kernel", spec.kernel)
        _sub(os_el, "initrd", spec.initrd)
        args = kernel_cmdline(
            spec.meta.name,
            spec.vcpus,
            spec.guest_port,
            spec.kernel_args,
            dhcp=spec.network != "user",
            address=spec.address if spec.network != "user" else "",
            gateway=spec.gateway,
        )
        _sub(os_el, "cmdline", args)
    else:
        _sub(os_el, "boot", dev="hd")
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.domain_type == "kvm":
        _sub(root, "cpu", mode="host-passthrough")
    _sub(root, "clock", offset="utc")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")

    dev = _sub(root, "devices")
    disk = _sub(dev, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    _sub(disk, "source", file=spec.disk_path)
    _sub(disk, "target", dev="vda", bus="virtio")
    _pci(disk, DISK_PCI_SLOT)
    if spec.seed_iso:
        cd = _sub(dev, "disk", type="file", device="cdrom")
        _sub(cd, "driver", name="qemu", type="raw")
        _sub(cd, "source", file=spec.seed_iso)
        _sub(cd, "target", dev="hdc", bus="ide")
        _sub(cd, "readonly")
    _sub(dev, "controller", type="usb", model="none")
    if spec.network == "network":
        nic = _sub(dev, "interface", type="network")
        if spec.mac:
            _sub(nic, "mac", address=spec.mac)
        _sub(nic, "source", network=spec.network_name)
        _sub(nic, "model", type="virtio")
        _pci(nic, NIC_PCI_SLOT)
    elif spec.network == "bridge":
        nic = _sub(dev, "interface", type="bridge")
        if spec.mac:
            _sub(nic, "mac", address=spec.mac)
        _sub(nic, "source", bridge=spec.bridge)
        _sub(nic, "model", type="virtio")
        _pci(nic, NIC_PCI_SLOT)
    serial = _sub(dev, "serial", type="file")
    _sub(serial, "source", path=spec.console_log, append="on")
    _sub(serial, "target", port="0")
    console = _sub(dev, "console", type="file")
    _sub(console, "source", path=spec.console_log, append="on")
    _sub(console, "target", type="serial", port="0")
    rng = _sub(dev, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _pci(rng, RNG_PCI_SLOT)
    if balloon:
        _pci(_sub(dev, "memballoon", model="virtio"), BALLOON_PCI_SLOT)
    else:
        _sub(dev, "memballoon", model="none")

    if spec.network == "user":
        if not 0 < spec.host_port < 65536:
            raise ValueError(f"user-mode networking needs a host port, got {spec.host_port}")
        cmd = ET.SubElement(root, f"{{{QEMU_NS}}}commandline")
        netdev = f"user,id=vmnet0,hostfwd=tcp:127.0.0.1:{spec.host_port}-:{spec.guest_port}"
        device = f"virtio-net-pci,netdev=vmnet0,bus=pci.0,addr=0x{NIC_PCI_SLOT:x}"
        for arg in ("-netdev", netdev, "-device", device):
            ET.SubElement(cmd, f"{{{QEMU_NS}}}arg", {"value": arg})
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def parse_metadata(element_xml: str) -> InstanceMeta | None:
    """Read vmscale's metadata element (as ``virDomainGetMetadata`` or a full domain XML returns it).

    Returns None when the XML carries no vmscale metadata or it is malformed (not ours).
    """
    try:
        root = ET.fromstring(element_xml)
    except ET.ParseError:
        return None
    tag = f"{{{VMSCALE_NS}}}instance"
    # virDomainGetMetadata returns the element without its namespace; a full domain XML has it.
    el = root if root.tag in (tag, "instance") else root.find(f".//{tag}")
    if el is None:
        return None
    try:
        return InstanceMeta(
            group=el.attrib["group"],
            name=el.attrib["name"],
            index=int(el.attrib["index"]),
            port=int(el.attrib["port"]),
            created_at=float(el.attrib.get("created", "0")),
            address=el.attrib.get("address", ""),
            epoch=int(el.attrib.get("epoch", "0")),
        )
    except (KeyError, ValueError):
        return None
