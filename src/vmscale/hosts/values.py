"""What a host is and holds, and how a person sees it: plain values, no libvirt.

``HostFacts`` is read from a host's libvirtd (``facts.read_facts``); ``HostStatus`` adds its
reachability and the controller's wishes (``inventory.HostInventory.statuses``). They live here, apart
from the modules that talk to libvirt, so that the controller and the API can hold them without
importing libvirt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vmscale.hosts.watch import Reach


@dataclass(frozen=True, slots=True)
class HostFacts:
    cpus: int
    memory_total_mb: float
    memory_available_mb: float
    memory_committed_mb: float  # memory of running domains (any group)
    running_vcpus: int
    domains: int  # running domains of any group, plus the vmscale instances that are not running
    instances: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> instance names
    kvm: bool = False

    @property
    def memory_free_mb(self) -> float:
        return max(0.0, min(self.memory_available_mb, self.memory_total_mb - self.memory_committed_mb))

    def group_instances(self, group: str) -> tuple[str, ...]:
        return self.instances.get(group, ())


@dataclass(frozen=True, slots=True)
class HostStatus:
    """One host as a person (``vmscale hosts``) or the API sees it."""

    name: str
    uri: str
    labels: dict[str, str]
    reach: Reach
    cordoned: bool
    draining: bool
    facts: HostFacts | None  # the last facts read (None: never reached)
    facts_age_s: float | None
    error: str  # the last connection error while not answering
    retry_in_s: float

    @property
    def state(self) -> str:
        if self.reach is Reach.UNREACHABLE:
            return "unreachable"
        if self.draining:
            return "draining"
        if self.cordoned:
            return "cordoned"
        return self.reach.value
