"""CPU utilisation from cumulative CPU time, for every provider: one rule, no platform calls.

A provider reads how much CPU time an instance has used so far (a process tree's user + system
seconds, a domain's ``cpu.time``) and hands it to ``CpuTracker.update``; the tracker turns two
successive readings into a percentage of the instance's *own* vCPUs,
``100 * Δcpu / (Δwall * vcpus)``, clamped to 0..100. The first reading is only a baseline, and so is
a reading whose ``source`` changed (another pid: the instance was restarted) or whose CPU time went
down (a new QEMU process): never a negative or inflated figure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CpuReading:
    cpu_s: float  # CPU time used so far, seconds
    wall_s: float  # when it was read, monotonic seconds
    vcpus: int
    source: int | str = 0  # what was measured (a pid); a change starts a new baseline


class CpuTracker:
    """Per-instance baselines; safe to call from several threads."""

    def __init__(self) -> None:
        self._last: dict[str, CpuReading] = {}
        self._lock = threading.Lock()

    def update(self, name: str, reading: CpuReading) -> float | None:
        """The utilisation since the previous reading, in percent (None for a baseline)."""
        with self._lock:
            prev = self._last.get(name)
            self._last[name] = reading
        if prev is None or prev.source != reading.source or reading.cpu_s < prev.cpu_s:
            return None
        wall = reading.wall_s - prev.wall_s
        if wall <= 0 or reading.vcpus <= 0:
            return None
        return max(0.0, min(100.0, 100.0 * (reading.cpu_s - prev.cpu_s) / (wall * reading.vcpus)))

    def forget(self, name: str) -> None:
        with self._lock:
            self._last.pop(name, None)
