"""What a live migration reports while it runs and when it is done: plain values, no libvirt.

They live outside ``providers/libvirt`` so that the controller, which shows a drain's progress and
records where an instance went, can read them without importing libvirt (a process-provider
installation has no libvirt-python). ``providers/libvirt/migrate.py`` makes them from libvirt's job
statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    name: str
    src: str
    dst: str
    elapsed_s: float
    memory_total: int = 0
    memory_processed: int = 0
    memory_remaining: int = 0
    disk_total: int = 0
    disk_processed: int = 0
    disk_remaining: int = 0

    @property
    def fraction(self) -> float | None:
        """Share of the bytes known so far that is copied (memory may be re-sent, so it can dip)."""
        total = self.memory_total + self.disk_total
        return None if total <= 0 else min(1.0, (self.memory_processed + self.disk_processed) / total)


@dataclass(frozen=True, slots=True)
class MigrationResult:
    name: str
    src: str
    dst: str
    wall_s: float  # from asking the source to it answering
    total_ms: int | None = None  # libvirt's time_elapsed of the job
    downtime_ms: int | None = None  # how long the guest was paused for the switch-over
    memory_bytes: int | None = None
    disk_bytes: int | None = None
    overlay_bytes: int | None = None  # what the source overlay held: the disk data to copy
    stats: Mapping[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, str]:
        """For ``ProviderInstance.details`` (strings only)."""
        out = {"migrated_from": self.src, "migration_wall_s": f"{self.wall_s:.3f}"}
        for key, value in (
            ("migration_total_ms", self.total_ms),
            ("migration_downtime_ms", self.downtime_ms),
            ("migration_memory_bytes", self.memory_bytes),
            ("migration_disk_bytes", self.disk_bytes),
            ("migration_overlay_bytes", self.overlay_bytes),
        ):
            if value is not None:
                out[key] = str(value)
        return out
