"""Builders for policy tests: snapshots and observations from a few numbers."""

from __future__ import annotations

from collections.abc import Sequence

from vmscale.model import InstanceSnapshot, InstanceState, Sample, Snapshot

T0 = 1_700_000_000.0


def snap(
    cpus: Sequence[float | None] = (),
    *,
    now: float = T0,
    desired: int | None = None,
    booting: int = 0,
    draining: int = 0,
    min_count: int = 1,
    max_count: int = 10,
    rps: Sequence[float | None] | None = None,
    latency: float | None = None,
    vcpus: Sequence[int] | None = None,
    booting_vcpus: int = 1,
) -> Snapshot:
    """Ready instances with the given newest cpu (None = no sample), plus booting/draining ones.

    ``vcpus`` gives each ready instance's size (default 1); booting ones have ``booting_vcpus``."""
    insts = []
    for i, cpu in enumerate(cpus):
        r = rps[i] if rps is not None else None
        samples = () if cpu is None and r is None else (Sample(now - 0.5, cpu=cpu, rps=r),)
        size = vcpus[i] if vcpus is not None else 1
        insts.append(InstanceSnapshot(f"web-{i + 1}", InstanceState.READY, vcpus=size, samples=samples))
    insts += [
        InstanceSnapshot(f"boot-{i}", InstanceState.BOOTING, vcpus=booting_vcpus) for i in range(booting)
    ]
    insts += [InstanceSnapshot(f"drain-{i}", InstanceState.DRAINING) for i in range(draining)]
    group = (Sample(now - 0.5, latency_p95=latency),) if latency is not None else ()
    if desired is None:
        desired = len(cpus) + booting
    return Snapshot(now, desired, min_count, max_count, tuple(insts), group)
