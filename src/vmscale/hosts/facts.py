"""What a host is and holds, as its libvirtd reports it (read in one bounded call per host).

* CPUs and total memory: ``virNodeGetInfo``.
* Available memory: ``virNodeGetMemoryStats`` (free + buffers + cached, what the kernel could give
  a new guest), or ``virNodeGetFreeMemory`` where a driver lacks the stats (the test driver).
* Committed memory and running vCPUs: the sums over running domains (``virDomainGetInfo``). Free
  memory for placement is the smaller of "available" and "total minus committed": QEMU touches guest
  memory lazily, so a host whose guests have not touched theirs yet still has them promised.
* vmscale's instances on the host, by group, from each domain's vmscale metadata (any state: a
  saved warm-pool domain is still the group's).
* KVM: whether the host's libvirt offers domain type ``kvm`` (its capabilities).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

import libvirt

from vmscale.providers.libvirt import xml


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


def _available_mb(conn: libvirt.virConnect) -> float:
    try:
        stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        return (stats.get("free", 0) + stats.get("buffers", 0) + stats.get("cached", 0)) / 1024
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        return float(conn.getFreeMemory()) / 2**20


def offers_kvm(capabilities_xml: str) -> bool:
    """True when the host capabilities list a ``kvm`` domain type for some guest architecture."""
    try:
        root = ET.fromstring(capabilities_xml)
    except ET.ParseError:
        return False
    return any(d.get("type") == "kvm" for d in root.iter("domain"))


def _metadata(dom: libvirt.virDomain) -> xml.InstanceMeta | None:
    try:
        return xml.parse_metadata(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml.VMSCALE_NS, 0))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_NO_DOMAIN):
            return None  # not ours, or gone between listing and reading
        raise


def read_facts(conn: libvirt.virConnect, *, kvm: bool | None = None) -> HostFacts:
    """One host's facts. ``kvm`` when already known (capabilities do not change while it runs)."""
    _model, memory_mb, cpus, *_rest = conn.getInfo()
    committed_kib = 0
    running_vcpus = 0
    domains = 0
    instances: dict[str, list[str]] = {}
    for dom in conn.listAllDomains(0):
        try:
            state, _max_kib, mem_kib, vcpus, _cpu_time = dom.info()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue
            raise
        active = state not in (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTDOWN,
            libvirt.VIR_DOMAIN_CRASHED,
        )
        meta = _metadata(dom)
        if active:
            committed_kib += mem_kib
            running_vcpus += vcpus
        if active or meta is not None:
            domains += 1
        if meta is not None:
            instances.setdefault(meta.group, []).append(meta.name)
    if kvm is None:
        kvm = offers_kvm(conn.getCapabilities())
    return HostFacts(
        cpus=int(cpus),
        memory_total_mb=float(memory_mb),
        memory_available_mb=_available_mb(conn),
        memory_committed_mb=committed_kib / 1024,
        running_vcpus=running_vcpus,
        domains=domains,
        instances={g: tuple(sorted(names)) for g, names in instances.items()},
        kvm=kvm,
    )
