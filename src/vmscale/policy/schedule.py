"""Schedule: known busy hours as a floor under the count.

Each entry is a window, open from a ``start`` cron match until the first ``end`` match after it
(or for a ``duration``), in the entry's timezone: "from 09:00 to 17:30 on weekdays keep at least
3". While windows are open the group keeps at least the largest of their ``min``; the schedule
never votes on scaling itself (it abstains), so outside its windows it neither blocks nor forces
anything, and inside them other policies may still scale above the floor or back down to it.

Cheap to ask often: each window remembers the interval over which its answer holds and
recomputes only at its edges (the simulator asks once per simulated second).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from vmscale.config.policy import ScheduleEntry, SchedulePolicyConfig
from vmscale.cron import Window
from vmscale.model import Figures, ReasonCode
from vmscale.policy.base import Observation, PolicyState, Proposal, ScaleEvent


def entry_words(entry: ScheduleEntry) -> str:
    """'0 9 * * MON-FRI to 30 17 * * MON-FRI (UTC)' — how decisions and `config check` name it."""
    until = f"to {entry.end}" if entry.end else f"for {entry.duration}"
    return f"{entry.start} {until} ({entry.timezone})"


class SchedulePolicy:
    kind = "schedule"
    horizon_s = 0.0

    def __init__(self, cfg: SchedulePolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._entries: list[tuple[Window, int, str]] = [
            (Window(e.start, e.end, e.duration_s, ZoneInfo(e.timezone)), e.min, entry_words(e))
            for e in cfg.entries
        ]

    def floor_at(self, now: float) -> tuple[int, str]:
        """The scheduled minimum at epoch second ``now`` and the entry that sets it ("" if none)."""
        best, which = 0, ""
        for window, min_count, words in self._entries:
            if min_count > best and window.at(now).open:
                best, which = min_count, words
        return best, which

    def decide(
        self, obs: Observation, state: PolicyState, events: tuple[ScaleEvent, ...]
    ) -> tuple[Proposal, PolicyState]:
        floor, which = self.floor_at(obs.now)
        if not which:
            return Proposal(None, "no scheduled minimum now", code=ReasonCode.NO_OPINION), state
        floor = max(obs.min_count, min(obs.max_count, floor))
        reason = f"schedule '{which}' keeps at least {floor}"
        return Proposal(
            None, reason, floor=floor, figures=Figures(floor=floor), code=ReasonCode.SCHEDULE_FLOOR
        ), state
