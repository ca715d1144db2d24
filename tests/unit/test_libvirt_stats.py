"""CPU % from cumulative CPU time (one tracker for every provider), and host headroom."""

from __future__ import annotations

import pytest

from vmscale.providers.cpu import CpuReading, CpuTracker
from vmscale.providers.libvirt.host import HostLoad, headroom_problem

S = 1.0  # CPU seconds (libvirt's cpu.time is converted from ns before it gets here)


def test_first_reading_is_a_baseline_then_delta_over_wall_and_vcpus() -> None:
    t = CpuTracker()
    assert t.update("a", CpuReading(10 * S, 100.0, 2)) is None
    # 3 CPU-seconds in 2 wall seconds on 2 vCPUs = 75 % of the VM's own capacity.
    assert t.update("a", CpuReading(13 * S, 102.0, 2)) == pytest.approx(75.0)


def test_restarted_domain_resets_the_baseline_instead_of_going_negative() -> None:
    t = CpuTracker()
    t.update("a", CpuReading(50 * S, 0.0, 1))
    assert t.update("a", CpuReading(1 * S, 1.0, 1)) is None
    assert t.update("a", CpuReading(1.5 * S, 2.0, 1)) == pytest.approx(50.0)


def test_a_new_source_a_restarted_process_starts_a_new_baseline() -> None:
    t = CpuTracker()
    t.update("a", CpuReading(1 * S, 0.0, 1, source=101))
    assert t.update("a", CpuReading(5 * S, 1.0, 1, source=202)) is None, "another pid: not 400 %"
    assert t.update("a", CpuReading(5.5 * S, 2.0, 1, source=202)) == pytest.approx(50.0)


def test_values_are_clamped_to_the_contract_range() -> None:
    t = CpuTracker()
    t.update("a", CpuReading(0, 0.0, 1))
    # QEMU's I/O threads can add time beyond the vCPUs' share: never report above 100.
    assert t.update("a", CpuReading(3 * S, 2.0, 1)) == 100.0


def test_zero_wall_time_gives_nothing_and_forget_drops_the_baseline() -> None:
    t = CpuTracker()
    t.update("a", CpuReading(0, 5.0, 1))
    assert t.update("a", CpuReading(S, 5.0, 1)) is None
    t.forget("a")
    assert t.update("a", CpuReading(2 * S, 6.0, 1)) is None


def test_instances_are_tracked_independently() -> None:
    t = CpuTracker()
    t.update("a", CpuReading(0, 0.0, 1))
    t.update("b", CpuReading(0, 0.0, 4))
    assert t.update("a", CpuReading(S, 1.0, 1)) == pytest.approx(100.0)
    assert t.update("b", CpuReading(S, 1.0, 4)) == pytest.approx(25.0)


LIMITS = {"min_free_memory_mb": 512, "max_vcpu_overcommit": 2.0}


@pytest.mark.parametrize(
    ("load", "memory_mb", "vcpus", "problem"),
    [
        pytest.param(HostLoad(4096, 2, 0), 512, 1, None, id="fits"),
        pytest.param(HostLoad(1000, 2, 0), 512, 1, "host memory", id="memory-headroom"),
        pytest.param(HostLoad(1024, 2, 0), 512, 1, None, id="memory-exactly-at-headroom"),
        pytest.param(HostLoad(8192, 2, 3), 512, 1, None, id="vcpus-at-limit"),
        pytest.param(HostLoad(8192, 2, 4), 512, 1, "host CPU", id="vcpus-over-limit"),
        pytest.param(HostLoad(8192, 2, 0), 512, 5, "host CPU", id="one-vm-too-big"),
    ],
)
def test_headroom(load: HostLoad, memory_mb: int, vcpus: int, problem: str | None) -> None:
    got = headroom_problem(load, memory_mb=memory_mb, vcpus=vcpus, **LIMITS)  # type: ignore[arg-type]
    if problem is None:
        assert got is None
    else:
        assert got is not None and got.startswith(problem)
