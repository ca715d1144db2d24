"""Settings of the event logs ``vmscale up`` writes in its state folder.

``autoscaler.jsonl`` holds every event (a tick line per interval, decisions, instance changes,
errors) and rotates by size; ``decisions.jsonl`` holds everything but ticks and rotates rarely,
so decisions outlive the ticks that push them out of the first file. Defaults: at most
32 MiB x 4 files of the full stream (a tick of a group of 4 is about 370 bytes: 30 MiB a day at
one per second, so about 4 days are kept) and 64 MiB x 6 of decisions (a scale event with its
instance changes is a few kilobytes: years of them for a group that scales a few times an hour).
"""

from __future__ import annotations

from pydantic import Field

from vmscale.config.base import Section

MIB = 2**20


class EventLogConfig(Section):
    max_mb: float = Field(32.0, ge=0, description="rotate autoscaler.jsonl at this size (0 = never)")
    backups: int = Field(3, ge=1, le=100, description="rotated autoscaler.jsonl files kept (.1 newest)")
    decisions_max_mb: float = Field(64.0, ge=0, description="rotate decisions.jsonl at this size (0 = never)")
    decisions_backups: int = Field(5, ge=1, le=100, description="rotated decisions.jsonl files kept")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * MIB)

    @property
    def decisions_max_bytes(self) -> int:
        return int(self.decisions_max_mb * MIB)
