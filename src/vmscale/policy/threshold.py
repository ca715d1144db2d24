"""The threshold rule: the original student system's rule, generalised.

A *sample* is the group mean of the metric over ready instances (each one's newest value), taken
once per decision. It counts only if it is newer than the last one counted, so a controller that
decides faster than it samples does not count one observation twice. A tick with no data from any
ready instance breaks both streaks (unknown is not "above").

``samples_up`` consecutive samples strictly above ``upper`` propose ``current + step`` and restart the
up streak; likewise ``samples_down`` below ``lower`` propose ``current - step``. Without ``lower`` the
policy has no opinion on scaling in and abstains, so it never blocks other policies' scale-in; with
one, it votes to hold while the metric is not low, which blocks scale-in (scale-in needs every
policy's agreement).
"""

from __future__ import annotations

from dataclasses import replace

from vmscale.config.policy import ThresholdPolicyConfig
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


class ThresholdPolicy:
    kind = "threshold"

    def __init__(self, cfg: ThresholdPolicyConfig) -> None:
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
        if mean is None:
            state = replace(state, up_streak=0, down_streak=0)
            return Proposal(
                hold, f"{no_data(cfg.metric, view)}; streaks reset", code=ReasonCode.NO_DATA
            ), state
        figures = Figures(str(cfg.metric), mean, upper=cfg.upper, lower=cfg.lower, ready=obs.ready)
        state = count_streaks(state, view, mean > cfg.upper, cfg.lower is not None and mean < cfg.lower)
        up, down = state.up_streak, state.down_streak
        shown = fmt(cfg.metric, mean)
        if up >= cfg.samples_up:
            blocked = in_cooldown(obs, events, True, cfg.cooldown_up_s, cfg.cooldown_down_s)
            target = clamp(current + cfg.step, obs)
            if blocked or target <= current:
                why = blocked or f"already at max {obs.max_count}"
                return Proposal(
                    clamp(current, obs),
                    f"{cfg.metric} {shown} > {cfg.upper:g} for {up} samples but {why}",
                    figures=figures,
                    code=ReasonCode.COOLDOWN if blocked else ReasonCode.LIMITED_MAX,
                ), state
            reason = (
                f"{cfg.metric} {shown} > {cfg.upper:g} for {up} consecutive samples "
                f"-> {current}+{cfg.step}={target}"
            )
            return Proposal(target, reason, figures=figures, code=ReasonCode.ABOVE_UPPER), replace(
                state, up_streak=0
            )
        if cfg.lower is not None and down >= cfg.samples_down:
            blocked = in_cooldown(obs, events, False, cfg.cooldown_up_s, cfg.cooldown_down_s)
            target = clamp(current - cfg.step, obs)
            if blocked or target >= current:
                why = blocked or f"already at min {obs.min_count}"
                return Proposal(
                    hold,
                    f"{cfg.metric} {shown} < {cfg.lower:g} for {down} samples but {why}",
                    figures=figures,
                    code=ReasonCode.COOLDOWN if blocked else ReasonCode.LIMITED_MIN,
                ), state
            reason = (
                f"{cfg.metric} {shown} < {cfg.lower:g} for {down} consecutive samples "
                f"-> {current}-{cfg.step}={target}"
            )
            return Proposal(target, reason, figures=figures, code=ReasonCode.BELOW_LOWER), replace(
                state, down_streak=0
            )
        if up:
            reason = f"{cfg.metric} {shown} > {cfg.upper:g} for {up}/{cfg.samples_up} samples"
        elif down:
            reason = f"{cfg.metric} {shown} < {cfg.lower:g} for {down}/{cfg.samples_down} samples"
        else:
            band = f"{cfg.lower:g}..{cfg.upper:g}" if cfg.lower is not None else f"<= {cfg.upper:g}"
            reason = f"{cfg.metric} {shown} within {band}"
        code = ReasonCode.STREAK_SHORT if up or down else ReasonCode.WITHIN_BOUNDS
        return Proposal(hold, reason, figures=figures, code=code), state
