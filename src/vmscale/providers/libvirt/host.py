"""Host headroom: refuse to start a VM the host cannot run, instead of overcommitting it.

Two limits, both configurable in ``LibvirtProviderConfig``:

* memory: after giving the new VM its memory, at least ``min_free_memory_mb`` must remain available
  (``MemAvailable``; QEMU touches guest memory lazily, so this is conservative);
* CPU: the vCPUs of all running domains on this host plus the new VM's must not exceed
  ``host CPUs x max_vcpu_overcommit``.

A refusal is a ``TemporaryProviderError``: the controller backs off and tries again later, when
another VM may have gone away.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HostLoad:
    available_memory_mb: float
    host_cpus: int
    running_vcpus: int


def headroom_problem(
    load: HostLoad, *, memory_mb: int, vcpus: int, min_free_memory_mb: int, max_vcpu_overcommit: float
) -> str | None:
    """Why a VM of this size must not start now, or None when it fits."""
    left = load.available_memory_mb - memory_mb
    if left < min_free_memory_mb:
        return (
            f"host memory: {load.available_memory_mb:.0f} MiB available, a {memory_mb} MiB VM would leave "
            f"{left:.0f} MiB < the {min_free_memory_mb} MiB headroom (provider.libvirt.min_free_memory_mb)"
        )
    limit = load.host_cpus * max_vcpu_overcommit
    if load.running_vcpus + vcpus > limit:
        return (
            f"host CPU: {load.running_vcpus} vCPUs running + {vcpus} would exceed {limit:g} "
            f"({load.host_cpus} CPUs x max_vcpu_overcommit {max_vcpu_overcommit:g})"
        )
    return None
