"""Live vCPU resize of a running domain: hot-add and hot-remove (the ``Resizer`` role for libvirt).

How it works, and what was measured here (libvirt 9.0, QEMU 7.2, TCG, Debian's 6.1 cloud kernel):

* The domain is defined with room to grow (``<vcpu current='N'>MAX</vcpu>``, ``xml.py``); QEMU
  starts with ``-smp N,maxcpus=MAX`` and ``setVcpusFlags(n, AFFECT_LIVE)`` plugs or unplugs vCPU
  devices (``device_add``/``device_del``) without stopping the guest. ``AFFECT_CONFIG`` is added for
  a persistent domain so a restart keeps the size.
* Hot-add: the guest kernel sees an ACPI CPU hotplug event and creates the CPU *offline*; the
  guest's uevent hook (``guest.py``) onlines it and tells the backend, which grows its pool.
* Hot-remove: libvirt asks the guest to eject the vCPU (ACPI); the guest kernel takes it offline
  itself and ejects it, and libvirt waits for QEMU's DEVICE_DELETED before it returns. Nothing has to
  be offlined from inside first. A guest that does not release the vCPU makes libvirt time out
  (``TemporaryProviderError``); the live count is read back after the call so a partial result is
  reported as what it is.

Bounds are checked before libvirt is asked: 1..the domain's maximum, with an error that says how to
get more room (``template.max_vcpus``). Foreign libvirt errors are translated by the connection.
"""

from __future__ import annotations

import libvirt

from vmscale.errors import PermanentProviderError, TemporaryProviderError
from vmscale.providers.libvirt.connection import LibvirtConnection

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


class ResizeOutOfRange(PermanentProviderError):
    """The asked vCPU count is outside 1..the domain's maximum (it was defined without room)."""


def check_bounds(name: str, vcpus: int, maximum: int) -> None:
    """``ResizeOutOfRange`` naming the instance, the range and how to get more room."""
    if vcpus < 1:
        raise ResizeOutOfRange(f"cannot resize {name} to {vcpus} vCPUs: at least 1", instance=name)
    if vcpus > maximum:
        raise ResizeOutOfRange(
            f"cannot resize {name} to {vcpus} vCPUs: it was defined with room for {maximum}; "
            "raise template.max_vcpus (new instances get the room, this one keeps its own)",
            instance=name,
        )


def live_vcpus(conn: LibvirtConnection, dom: libvirt.virDomain, name: str) -> tuple[int, int]:
    """(current, maximum) vCPUs of a running domain."""

    def read(_c: libvirt.virConnect) -> tuple[int, int]:
        return int(dom.vcpusFlags(LIVE)), int(dom.vcpusFlags(LIVE | libvirt.VIR_DOMAIN_VCPU_MAXIMUM))

    return conn.call("read vCPUs", read, instance=name)


def set_vcpus(
    conn: LibvirtConnection, dom: libvirt.virDomain, name: str, vcpus: int, *, timeout_s: float
) -> int:
    """Make the running domain have ``vcpus`` vCPUs; returns the live count afterwards.

    Idempotent: asking for the count it has already is a no-op.
    """
    current, maximum = live_vcpus(conn, dom, name)
    check_bounds(name, vcpus, maximum)
    if vcpus == current:
        return current

    def apply(_c: libvirt.virConnect) -> None:
        flags = LIVE | (CONFIG if dom.isPersistent() else 0)
        dom.setVcpusFlags(vcpus, flags)

    verb = "hot-add" if vcpus > current else "hot-remove"
    conn.call(f"vCPU {verb}", apply, instance=name, timeout_s=timeout_s)
    after, _ = live_vcpus(conn, dom, name)
    if after != vcpus:
        raise TemporaryProviderError(
            f"{name}: vCPU {verb} {current} -> {vcpus} left it at {after} (the guest did not release "
            "or take the vCPU in time); retry later",
            instance=name,
        )
    return after
