"""Domains' cumulative ``cpu.time`` from libvirt (``vmscale.providers.cpu`` turns it into a
utilisation, the same way for every provider).

Which libvirt call: measured here (``benchmarks/bench_libvirt_metrics.py``, libvirt 9.0, TCG
guests), ``getAllDomainStats(CPU_TOTAL|VCPU, NOWAIT)`` costs ~2.3-2.6 ms *per domain* on
``qemu:///system`` (it reads cgroup, resctrl and per-vCPU thread statistics), while
``listAllDomains`` + ``virDomainGetInfo`` costs ~0.15-0.2 ms per domain (~3 µs per domain either way
on the in-process test driver). So ``fetch_cpu`` uses GetInfo; the bulk call is kept as
``fetch_cpu_bulk`` for the benchmark and for drivers where it is the cheaper one.
"""

from __future__ import annotations

from collections.abc import Iterable

import libvirt

STATS = libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_VCPU
FLAGS = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT


def fetch_cpu(conn: libvirt.virConnect, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``{name: (cpu_time_ns, vcpus)}`` for the running domains among ``names``.

    One ``listAllDomains(ACTIVE)`` round trip, then ``virDomainGetInfo`` per wanted domain. For QEMU,
    GetInfo takes no domain job (it reads the process's CPU time, not the monitor), so a busy or
    hung domain cannot make it wait: the same guarantee NOWAIT gives the bulk call, cheaper.
    """
    wanted = set(names)
    out: dict[str, tuple[int, int]] = {}
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        name = dom.name()
        if name not in wanted:
            continue
        try:
            _state, _max_mem, _mem, vcpus, cpu_time = dom.info()
        except libvirt.libvirtError:
            continue  # stopped between listing and reading: no sample this time
        out[name] = (int(cpu_time), int(vcpus))
    return out


def fetch_cpu_bulk(conn: libvirt.virConnect, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """The same from one ``getAllDomainStats(CPU_TOTAL|VCPU, ACTIVE|NOWAIT)`` call (benchmarked)."""
    wanted = set(names)
    out: dict[str, tuple[int, int]] = {}
    for dom, stats in conn.getAllDomainStats(STATS, FLAGS):
        cpu = stats.get("cpu.time")
        vcpus = stats.get("vcpu.current") or stats.get("vcpu.maximum") or 1
        if cpu is not None and dom.name() in wanted:
            out[dom.name()] = (int(cpu), int(vcpus))
    return out
