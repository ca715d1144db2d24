"""When a consolidation round may run. Pure: the controller hands in what it knows.

Consolidation moves serving instances between hosts to empty some of them. It must never fight
the scale-up that follows a scale-in, so a round runs only when all of these hold:

* it is enabled, and a scale-in happened since the last round that found nothing to do (a round
  is *armed* by a scale-in, not by time alone);
* the desired count has not changed for ``cooldown_s`` (and the last round ended that long ago):
  a scale-in is often followed by a scale-up within minutes, and moving instances in between only
  costs CPU (a migration copies memory) for hosts that are needed again;
* no policy sees an overload, by the last decision (``overload``);
* the group is settled: nothing launching, booting, draining, failed or unknown, no migration or
  drain running (``unsettled``), so the plan sees the group as it will stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmscale.model import Decision, Direction, ReasonCode

OVERLOADED = frozenset({ReasonCode.ABOVE_TARGET, ReasonCode.ABOVE_UPPER, ReasonCode.LIMITED_MAX})


def overload(decision: Decision | None) -> str | None:
    """Why the last decision says the group is overloaded, or None. Read from its direction, code
    and figures: a scale-up; a policy that proposed more than the current count
    (``highest_proposal``, whoever won); a target policy's recommendation above it; a threshold
    policy's observed value above its upper bound (a streak not yet long enough to scale); a policy
    that wants more but is held (above target or upper bound, or at max)."""
    if decision is None:
        return None
    current, f = decision.current, decision.figures
    if decision.direction is Direction.UP:
        return f"the last decision scaled up ({current} -> {decision.desired})"
    if f.highest_proposal is not None and f.highest_proposal > current:
        return f"a policy proposes {f.highest_proposal} instances, more than the {current} there are"
    if f.recommendation is not None and f.recommendation > current:
        return f"{decision.policy} recommends {f.recommendation} instances, more than {current}"
    if f.observed is not None and f.upper is not None and f.observed > f.upper:
        return f"{decision.policy} sees {f.observed:.1f} above its upper bound {f.upper:g}"
    if decision.code in OVERLOADED:
        return f"{decision.policy} wants more instances ({decision.code.value})"
    return None


@dataclass(frozen=True, slots=True)
class GateInput:
    enabled: bool
    armed: bool  # a scale-in since the last round that found nothing to move
    quiet_s: float  # seconds since the desired count last changed or the last round ended
    cooldown_s: float
    overload: str | None  # ``overload(last decision)``
    unsettled: str | None  # why the group is not settled ("web-3 is booting"), or None


def blocked(g: GateInput) -> str | None:
    """Why no round may start now (the first reason that applies), or None when one may."""
    if not g.enabled:
        return "consolidation is off (cluster.consolidation.enabled)"
    if not g.armed:
        return "no scale-in since the last round"
    if g.overload is not None:
        return f"overloaded: {g.overload}"
    if g.unsettled is not None:
        return f"waiting: {g.unsettled}"
    if g.quiet_s < g.cooldown_s:
        return f"cooldown: {g.quiet_s:.0f} of {g.cooldown_s:g} s since the last scale event"
    return None
