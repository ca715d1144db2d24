"""Schedule: known busy hours as a floor under the count.

While an entry's cron expression matches the current minute (in the entry's timezone), the group
keeps at least that entry's ``min``; several matching entries take the largest. The schedule never
votes on scaling itself (it abstains), so outside its hours it neither blocks nor forces anything,
and inside them other policies may still scale above the floor or back down to it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from vmscale.config.policy import SchedulePolicyConfig
from vmscale.cron import CronSpec, parse_cron
from vmscale.policy.base import Observation, PolicyState, Proposal, ScaleEvent


class SchedulePolicy:
    kind = "schedule"
    horizon_s = 0.0

    def __init__(self, cfg: SchedulePolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._entries: list[tuple[CronSpec, int, ZoneInfo, str]] = [
            (parse_cron(e.cron), e.min, ZoneInfo(e.timezone), e.cron) for e in cfg.entries
        ]
        self._memo: tuple[float, int, str] = (float("nan"), 0, "")

    def floor_at(self, now: float) -> tuple[int, str]:
        """The scheduled minimum at epoch second ``now`` and the entry that sets it ("" if none)."""
        minute = now // 60  # cron works in whole minutes; the simulator asks 60 times per minute
        if self._memo[0] == minute:
            return self._memo[1], self._memo[2]
        best, which = 0, ""
        for spec, min_count, tz, text in self._entries:
            if min_count > best and spec.matches(datetime.fromtimestamp(now, tz)):
                best, which = min_count, f"{text} ({tz.key})"
        self._memo = (minute, best, which)
        return best, which

    def decide(
        self, obs: Observation, state: PolicyState, events: tuple[ScaleEvent, ...]
    ) -> tuple[Proposal, PolicyState]:
        floor, which = self.floor_at(obs.now)
        if not which:
            return Proposal(None, "no scheduled minimum now"), state
        floor = max(obs.min_count, min(obs.max_count, floor))
        reason = f"schedule '{which}' keeps at least {floor}"
        return Proposal(None, reason, floor=floor, figures={"floor": float(floor)}), state
