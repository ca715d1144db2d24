"""Step scaling: the further the metric is beyond its bound, the larger the adjustment (AWS style).

Samples and streaks are counted as in the threshold rule (group mean over ready instances, once per
new sample). When ``samples_up`` consecutive samples are above ``upper``, the distance of the latest
one (``metric - upper``) picks the step whose ``[lower_bound, upper_bound)`` contains it; below
``lower`` the distance is ``lower - metric``. A distance no step covers changes nothing.
"""

from __future__ import annotations

from dataclasses import replace

from vmscale.config.policy import StepAdjustment, StepPolicyConfig
from vmscale.model import Figures, ReasonCode
from vmscale.policy.base import (
    Observation,
    PolicyState,
    Proposal,
    ScaleEvent,
    clamp,
    count_streaks,
    fmt,
    in_cooldown,
    no_data,
)


def pick_step(steps: list[StepAdjustment], distance: float) -> StepAdjustment | None:
    for s in steps:
        if s.lower_bound <= distance and (s.upper_bound is None or distance < s.upper_bound):
            return s
    return None


class StepPolicy:
    kind = "step"

    def __init__(self, cfg: StepPolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.horizon_s = max(cfg.cooldown_up_s, cfg.cooldown_down_s)

    def decide(
        self, obs: Observation, state: PolicyState, events: tuple[ScaleEvent, ...]
    ) -> tuple[Proposal, PolicyState]:
        cfg = self.cfg
        current = obs.desired
        hold = None if cfg.lower is None else clamp(current, obs)
        view = obs.metric(cfg.metric)
        mean = view.mean
        name = str(cfg.metric)
        if mean is None:
            state = replace(state, up_streak=0, down_streak=0)
            return Proposal(hold, f"{no_data(name, view)}; streaks reset", code=ReasonCode.NO_DATA), state
        above = cfg.upper is not None and mean > cfg.upper
        below = cfg.lower is not None and mean < cfg.lower
        state = count_streaks(state, view, above, below)
        shown = fmt(cfg.metric, mean)
        figures = Figures(name, mean, upper=cfg.upper, lower=cfg.lower, ready=obs.ready)
        if cfg.upper is not None and above and state.up_streak >= cfg.samples_up:
            distance = mean - cfg.upper
            step = pick_step(cfg.steps_up, distance)
            target = clamp(current + step.adjustment, obs) if step else current
            blocked = in_cooldown(obs, events, True, cfg.cooldown_up_s, cfg.cooldown_down_s)
            head = f"{name} {shown} is {distance:.3g} above {cfg.upper:g}"
            if step is None or blocked or target <= current:
                why = blocked or ("no step covers it" if step is None else f"already at max {obs.max_count}")
                code = ReasonCode.COOLDOWN if blocked else ReasonCode.LIMITED_MAX
                return Proposal(clamp(current, obs), f"{head} but {why}", figures=figures, code=code), state
            reason = f"{head} -> step +{step.adjustment}: {current}+{step.adjustment}={target}"
            up = Proposal(target, reason, figures=figures, code=ReasonCode.ABOVE_UPPER)
            return up, replace(state, up_streak=0)
        if cfg.lower is not None and below and state.down_streak >= cfg.samples_down:
            distance = cfg.lower - mean
            step = pick_step(cfg.steps_down, distance)
            target = clamp(current - step.adjustment, obs) if step else current
            blocked = in_cooldown(obs, events, False, cfg.cooldown_up_s, cfg.cooldown_down_s)
            head = f"{name} {shown} is {distance:.3g} below {cfg.lower:g}"
            if step is None or blocked or target >= current:
                why = blocked or ("no step covers it" if step is None else f"already at min {obs.min_count}")
                code = ReasonCode.COOLDOWN if blocked else ReasonCode.LIMITED_MIN
                return Proposal(hold, f"{head} but {why}", figures=figures, code=code), state
            reason = f"{head} -> step -{step.adjustment}: {current}-{step.adjustment}={target}"
            down = Proposal(target, reason, figures=figures, code=ReasonCode.BELOW_LOWER)
            return down, replace(state, down_streak=0)
        if above:
            reason = f"{name} {shown} > {cfg.upper:g} for {state.up_streak}/{cfg.samples_up} samples"
        elif below:
            reason = f"{name} {shown} < {cfg.lower:g} for {state.down_streak}/{cfg.samples_down} samples"
        else:
            reason = f"{name} {shown} within bounds"
        code = ReasonCode.STREAK_SHORT if above or below else ReasonCode.WITHIN_BOUNDS
        return Proposal(hold, reason, figures=figures, code=code), state
