"""Live vCPU resize of a running domain: hot-add and hot-remove (the ``Resizer`` role for libvirt).

How it works, and what was measured here (libvirt 9.0, QEMU 7.2, TCG, Debian's 6.1 cloud kernel):

* The domain is defined with room to grow (``<vcpu current='N'>MAX</vcpu>``, ``xml.py``); QEMU
  starts with ``-smp N,maxcpus=MAX`` and ``setVcpusFlags(n, AFFECT_LIVE)`` plugs or unplugs vCPU
  devices (``device_add``/``device_del``) without stopping the guest. ``AFFECT_CONFIG`` is added for
  a persistent domain so a restart keeps the size.
* Hot-add: the guest kernel sees an ACPI CPU hotplug event and creates the CPU *offline*; the
  guest's uevent hook (``guest.py``) onlines it and tells the backend, which grows its pool.
* Hot-remove: libvirt asks the guest to eject the vCPU (ACPI); the guest kernel takes it offline and
  ejects it by itself (measured: offline and removed ~0.3 s after the request), and QEMU frees the
  vCPU (its thread exits, ``query-hotpluggable-cpus`` shows the slot empty). But QEMU 7.2 under TCG
  emits DEVICE_DELETED only for the vCPU's ``lapic`` child, never for the vCPU itself, so libvirt
  9.0 waits 5 s, reports "vcpu unplug request timed out", and keeps counting the vCPU: its live count
  stays wrong and a later hot-add is a no-op (libvirt thinks the vCPU is there). Offlining it from
  inside first does not change what QEMU emits. So removal is refused unless the operator says the
  stack handles it (``provider.libvirt.vcpu_unplug = true``, e.g. KVM with a QEMU that sends the
  event); the vertical-first plan then removes whole instances instead of shrinking them
  (``LibvirtProvider.can_shrink``).

* The domain's CPU weight follows its vCPUs (``cpu_shares`` = 1024 per vCPU, live and in the config):
  libvirt gives each domain's cgroup the same weight whatever its size, so without this a grown VM
  gets no more host CPU than before as soon as the host is busy.

* Memory follows vCPUs when the domain has memory room (``template.max_memory_mb``, ``xml.py``):
  after the vCPUs change, the balloon's target is set to the memory of that size
  (``MemoryFollowsVcpus``, linear from ``memory_mb`` at ``vcpus`` to ``max_memory_mb`` at
  ``max_vcpus``), live and in the config. The call returns once QEMU has the new target; the guest's
  balloon driver gives or takes the pages by itself (a shrink only as fast as the guest can free
  them), so the size read back is the target, and libvirt's ``actual`` follows it.

Bounds are checked before libvirt is asked: 1..the domain's maximum, with an error that says how to
get more room (``template.max_vcpus``). Foreign libvirt errors are translated by the connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import libvirt

from vmscale.errors import PermanentProviderError, TemporaryProviderError
from vmscale.providers.libvirt.connection import BoundedCalls
from vmscale.providers.libvirt.xml import SHARES_PER_VCPU

log = logging.getLogger(__name__)
LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


@dataclass(frozen=True, slots=True)
class MemoryFollowsVcpus:
    """Memory of an instance by its vCPUs: ``memory_mb`` at ``vcpus``, ``max_memory_mb`` at
    ``max_vcpus``, linear between (whole MiB, rounded down), clamped to that range."""

    vcpus: int
    max_vcpus: int
    memory_mb: int
    max_memory_mb: int

    def __post_init__(self) -> None:
        if not (1 <= self.vcpus < self.max_vcpus and 0 < self.memory_mb <= self.max_memory_mb):
            raise ValueError(f"memory room needs vCPUs and memory to grow, got {self}")

    def at(self, vcpus: int) -> int:
        step = min(max(vcpus, self.vcpus), self.max_vcpus) - self.vcpus
        room = self.max_memory_mb - self.memory_mb
        return self.memory_mb + room * step // (self.max_vcpus - self.vcpus)


def memory_room(
    vcpus: int, max_vcpus: int, memory_mb: int, max_memory_mb: int | None
) -> MemoryFollowsVcpus | None:
    """The template's memory room, or None where memory does not grow (no ``max_memory_mb`` above
    ``memory_mb``, or no vCPUs to grow it with: ``config check`` refuses the latter)."""
    if max_memory_mb is None or max_memory_mb <= memory_mb or max_vcpus <= vcpus:
        return None
    return MemoryFollowsVcpus(vcpus, max_vcpus, memory_mb, max_memory_mb)


class ResizeOutOfRange(PermanentProviderError):
    """The asked vCPU count is outside 1..the domain's maximum (it was defined without room)."""


class ResizeUnsupported(PermanentProviderError):
    """Live vCPU removal was asked for where it is known not to work (see the module docstring)."""


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


def live_vcpus(conn: BoundedCalls, dom: libvirt.virDomain, name: str) -> tuple[int, int]:
    """(current, maximum) vCPUs of a running domain."""

    def read(_c: libvirt.virConnect) -> tuple[int, int]:
        return int(dom.vcpusFlags(LIVE)), int(dom.vcpusFlags(LIVE | libvirt.VIR_DOMAIN_VCPU_MAXIMUM))

    return conn.call("read vCPUs", read, instance=name)


def set_vcpus(
    conn: BoundedCalls,
    dom: libvirt.virDomain,
    name: str,
    vcpus: int,
    *,
    timeout_s: float,
    allow_unplug: bool = False,
) -> int:
    """Make the running domain have ``vcpus`` vCPUs; returns the live count afterwards.

    Idempotent: asking for the count it has already is a no-op.
    """
    current, maximum = live_vcpus(conn, dom, name)
    check_bounds(name, vcpus, maximum)
    if vcpus == current:
        return current
    if vcpus < current and not allow_unplug:
        raise ResizeUnsupported(
            f"cannot shrink {name} from {current} to {vcpus} vCPUs live: libvirt 9.0 with QEMU 7.2 (TCG) "
            "loses track of an unplugged vCPU; set provider.libvirt.vcpu_unplug = true only where the "
            "stack reports the unplug (remove the instance instead)",
            instance=name,
        )

    def apply(_c: libvirt.virConnect) -> None:
        persistent = dom.isPersistent()
        dom.setVcpusFlags(vcpus, LIVE | (CONFIG if persistent else 0))
        # Scheduler parameters take LIVE and CONFIG one at a time (libvirt refuses both at once).
        for flags in (LIVE, CONFIG) if persistent else (LIVE,):
            try:
                dom.setSchedulerParametersFlags(
                    {libvirt.VIR_DOMAIN_SCHEDULER_CPU_SHARES: SHARES_PER_VCPU * vcpus}, flags
                )
            except libvirt.libvirtError as exc:  # no cpu controller (some containers): the vCPUs count
                log.warning("%s: CPU weight not changed: %s", name, exc.get_error_message())

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


def set_memory(
    conn: BoundedCalls, dom: libvirt.virDomain, name: str, memory_mb: int, *, timeout_s: float
) -> None:
    """Set the balloon's target of a running domain with memory room (live, and in the config of a
    persistent one). Beyond the domain's maximum is refused by libvirt; the caller computes it from
    the same template, so that would be a bug, reported as libvirt words it."""

    def apply(_c: libvirt.virConnect) -> None:
        # One at a time, as the scheduler's weight: some drivers refuse LIVE and CONFIG together.
        for flags in (LIVE, CONFIG) if dom.isPersistent() else (LIVE,):
            dom.setMemoryFlags(memory_mb * 1024, flags)

    conn.call("balloon target", apply, instance=name, timeout_s=timeout_s)
