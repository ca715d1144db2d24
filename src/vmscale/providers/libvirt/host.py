"""Host headroom: refuse to start a VM the host cannot run, instead of overcommitting it.

Two limits, both configurable in ``LibvirtProviderConfig``, checked before a launch and before a
live resize grows a VM (vertical-first: a hot-added vCPU loads the host as a new VM's would):

* memory: after giving the new VM its memory, at least ``min_free_memory_mb`` must remain available
  (``MemAvailable``; QEMU touches guest memory lazily, so this is conservative);
* CPU: the vCPUs of all running domains on this host plus the new VM's must not exceed
  ``host CPUs x max_vcpu_overcommit``.

A refusal is a ``TemporaryProviderError``: the controller backs off and tries again later, when
another VM may have gone away.

Several groups on one host share its headroom. The check counts what libvirt reports (every running
domain, whichever group or program started it), so one group's VMs count against another's
launches; but a check and the start that follows are two steps, and two launches (of two groups, or
two instances of one) that check at once would both pass where only one fits. ``HeadroomGuard``
makes check-and-start one step per host within a process: every provider on the same libvirt URI
takes its turn. (Controllers in separate processes on one host are not serialised by it; each
still sees the other's running VMs.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class HostLoad:
    available_memory_mb: float
    host_cpus: int
    running_vcpus: int


def headroom_problem(
    load: HostLoad,
    *,
    memory_mb: int,
    vcpus: int,
    min_free_memory_mb: int,
    max_vcpu_overcommit: float,
    growth: bool = False,
) -> str | None:
    """Why a VM of this size must not start now (``growth``: why a running VM must not grow by this
    much), or None when it fits."""
    left = load.available_memory_mb - memory_mb
    if left < min_free_memory_mb:
        asked = f"{memory_mb} MiB more" if growth else f"a {memory_mb} MiB VM"
        return (
            f"host memory: {load.available_memory_mb:.0f} MiB available, {asked} would leave "
            f"{left:.0f} MiB < the {min_free_memory_mb} MiB headroom (provider.libvirt.min_free_memory_mb)"
        )
    limit = load.host_cpus * max_vcpu_overcommit
    if load.running_vcpus + vcpus > limit:
        return (
            f"host CPU: {load.running_vcpus} vCPUs running + {vcpus} would exceed {limit:g} "
            f"({load.host_cpus} CPUs x max_vcpu_overcommit {max_vcpu_overcommit:g})"
        )
    return None


class HeadroomGuard:
    """One per libvirt host (URI) in this process: launches take turns to check headroom and start."""

    _by_uri: ClassVar[dict[str, HeadroomGuard]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def for_host(cls, uri: str) -> HeadroomGuard:
        """The guard every provider connecting to ``uri`` shares."""
        with cls._registry_lock:
            return cls._by_uri.setdefault(uri, cls())

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the host while checking its headroom and starting a VM on it."""
        with self._lock:
            yield
