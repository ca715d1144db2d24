"""Target tracking with the Kubernetes HPA semantics, step by step as the HPA does it.

1. **Ratio** (``replica_recommendation``, the HPA's replica calculator in our words; the rules are
   listed on the function). For cpu and in-flight-per-vCPU the group figure is the *sum of use over
   the sum of capacity* (each instance's value times its vCPUs, over all their vCPUs), as the HPA
   computes a resource utilisation, so a resized instance weighs what it holds; requests per second
   is averaged per instance, like the HPA's pods metrics. ``latency_p95`` is one group-level
   figure: ``desired = ceil(ready x observed / target)``.
2. **Stabilization**: the recommendation actually used is the *lowest* of the last
   ``up_stabilization_s`` (for scale-up) and the *highest* of the last ``down_stabilization_s`` (for
   scale-down), so a brief dip does not remove capacity that is needed again a minute later. As the
   HPA does at creation, the very first decision seeds the down window with the current count.
3. **Rate limits** per period: up to ``max(start + instances, ceil(start x (1 + percent/100)))`` where
   ``start`` is the count at the beginning of the period (events of the set are in ``events``);
   down to ``min(start - instances, floor(start x (1 - percent/100)))``.
4. **Cooldowns** (not in the HPA; AWS-style, off by default) and the group's ``[min, max]``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from vmscale.config.policy import RateLimit, TargetPolicyConfig
from vmscale.model import Figures, Metric, ReasonCode
from vmscale.policy.base import (
    Observation,
    PolicyState,
    Proposal,
    ScaleEvent,
    clamp,
    fmt,
    in_cooldown,
    no_data,
    plural,
)


def _within(ratio: float, tolerance: float) -> bool:
    """The dead band is on the usage ratio (observed / target), not on the metric's own unit."""
    return abs(1.0 - ratio) <= tolerance


def replica_recommendation(obs: Observation, metric: str, target: float, tolerance: float) -> tuple[int, str]:
    """The HPA's replica calculation for one metric. Returns the count and the arithmetic in words.

    The rules, as ``replica_calculator.go`` applies them:

    * No value from any ready instance: hold (the HPA reports an error and changes nothing).
    * A group-level figure (``latency_p95``, an external per-group query) scales the ready count by
      its ratio to the target.
    * ``ratio = use / capacity / target``. With every ready instance reporting, and unless the ratio
      says "up" while instances are still starting: inside the tolerance hold, otherwise
      ``ceil(ratio x reporting instances)``.
    * Otherwise the ratio is recomputed conservatively. Ready instances without a value count as
      using 100 % (cpu; max(100 %, target) for targets above 100) or exactly the target (other
      metrics) when the ratio says "down", as 0 when it says "up", and are left out when the ratio
      is exactly 1. Starting instances count as 0 (with their capacity) only when it says "up".
      If the new ratio is inside the tolerance, or points the other way than the first one: hold.
      Otherwise ``ceil(new ratio x instances counted)``, unless that count moves against the new
      ratio's direction (fewer on "up", more on "down"): hold.
    """
    name = str(metric)
    view = obs.metric(metric)
    current = obs.desired
    observed = view.mean
    if observed is None:
        return current, f"{no_data(name, view)}; holding at {current}"
    ratio = observed / target
    side = "over" if observed > target else "under"
    head = f"{name} {fmt(metric, observed)} {side} target {fmt(metric, target, exact=True)}"
    if metric == Metric.LATENCY_P95 or view.group_level:
        if _within(ratio, tolerance):
            return current, f"{head}: within the {tolerance:g} dead band"
        n = math.ceil(obs.ready * ratio)
        arithmetic = f"ceil({obs.ready}*{observed:.3g}/{target:g})={n}"
        return n, f"{head} with {plural(obs.ready, 'ready instance')} -> {arithmetic}"
    count = view.reporting
    across = f"across {plural(count, 'ready instance')}"
    if view.weighted and view.cap != count:
        across += f" ({view.cap:g} vCPUs: sum of use over sum of capacity)"
    up_with_unready = obs.unready > 0 and ratio > 1.0
    if not up_with_unready and view.missing == 0:
        if _within(ratio, tolerance):
            return current, f"{head} {across}: within the {tolerance:g} dead band"
        n = math.ceil(count * ratio)
        return n, f"{head} {across} -> ceil({count}*{observed:.3g}/{target:g})={n}"
    use, cap, notes = view.use, view.cap, []
    if view.missing and ratio != 1.0:
        fill = (max(100.0, target) if metric == Metric.CPU else target) if ratio < 1.0 else 0.0
        use += fill * view.missing_cap
        cap += view.missing_cap
        count += view.missing
        notes.append(f"{view.missing} without samples counted as {fmt(metric, fill)}")
    elif view.missing:
        notes.append(f"{view.missing} without samples left out (the ratio is exactly 1)")
    if up_with_unready:
        cap += obs.unready_cap
        count += obs.unready
        notes.append(f"{obs.unready} not ready counted as {fmt(metric, 0.0)}")
    corrected_mean = use / cap if cap > 0 else 0.0
    new_ratio = corrected_mean / target
    corrected = f"{head} {across}; {', '.join(notes)} -> {fmt(metric, corrected_mean)}"
    if _within(new_ratio, tolerance):
        return current, f"{corrected}: within the dead band, holding"
    if (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current, f"{corrected}: direction flips, holding"
    n = math.ceil(count * new_ratio)
    if (new_ratio < 1.0 and n > current) or (new_ratio > 1.0 and n < current):
        return current, f"{corrected} -> {n} is the wrong way, holding"
    return n, f"{corrected} -> ceil({count}*{corrected_mean:.3g}/{target:g})={n}"


def stabilize(
    state: PolicyState, now: float, current: int, raw: int, up_window_s: float, down_window_s: float
) -> tuple[int, PolicyState]:
    """HPA stabilization over monotonic queues: exact window min/max in O(1) amortised per tick."""
    up_recs = tuple(r for r in state.up_recs if r[0] > now - up_window_s)
    down_recs = tuple(r for r in state.down_recs if r[0] > now - down_window_s)
    up_rec = min(raw, up_recs[0][1]) if up_recs else raw
    down_rec = max(raw, down_recs[0][1]) if down_recs else raw
    if up_window_s > 0:
        up_recs = (*(r for r in up_recs if r[1] < raw), (now, raw))
    if down_window_s > 0:
        down_recs = (*(r for r in down_recs if r[1] > raw), (now, raw))
    stabilized = min(max(current, up_rec), down_rec)
    return stabilized, replace(state, up_recs=up_recs, down_recs=down_recs)


def rate_limit(current: int, events: tuple[ScaleEvent, ...], now: float, limit: RateLimit, up: bool) -> int:
    """The furthest the count may move this tick under ``limit`` (HPA ``selectPolicy: Max``)."""
    moved = sum(d for t, d in events if t > now - limit.period_s and (d > 0) == up)
    start = current - moved
    if up:
        return max(current, start + limit.instances, math.ceil(start * (1 + limit.percent / 100)))
    return min(current, start - limit.instances, math.floor(start * (1 - limit.percent / 100)))


class TargetPolicy:
    kind = "target"

    def __init__(self, cfg: TargetPolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.horizon_s = max(
            cfg.up_limit.period_s, cfg.down_limit.period_s, cfg.cooldown_up_s, cfg.cooldown_down_s
        )

    def decide(
        self, obs: Observation, state: PolicyState, events: tuple[ScaleEvent, ...]
    ) -> tuple[Proposal, PolicyState]:
        cfg = self.cfg
        current = obs.desired
        view = obs.metric(cfg.metric)
        raw, reason = replica_recommendation(obs, cfg.metric, cfg.target, cfg.tolerance)
        figures = Figures(str(cfg.metric), view.mean, target=cfg.target, ready=obs.ready, recommendation=raw)
        if view.mean is None:  # no data: HPA does nothing and records nothing
            return Proposal(clamp(current, obs), reason, figures=figures, code=ReasonCode.NO_DATA), state
        code = (
            ReasonCode.ABOVE_TARGET
            if raw > current
            else ReasonCode.BELOW_TARGET
            if raw < current
            else ReasonCode.WITHIN_TOLERANCE
        )
        if state.last_sample_t is None and cfg.down_stabilization_s > 0 and not state.down_recs:
            # First decision ever (a new group, or a restart without saved state): like the HPA at
            # creation, seed the window with the current count so nothing is removed for one window.
            state = replace(state, down_recs=((obs.now, current),))
        state = replace(state, last_sample_t=view.t)
        desired, state = stabilize(
            state, obs.now, current, raw, cfg.up_stabilization_s, cfg.down_stabilization_s
        )
        if desired != raw and desired != current:
            reason += f"; stabilized to {desired}"
        elif desired != raw:
            window = cfg.down_stabilization_s if raw < current else cfg.up_stabilization_s
            reason += f"; stabilization holds at {desired} (window {window:g} s)"
            code = ReasonCode.STABILIZED
        if desired > current:
            cap = rate_limit(current, events, obs.now, cfg.up_limit, up=True)
            if desired > cap:
                reason += f"; rate limit {cap} (+{cfg.up_limit.instances} or {cfg.up_limit.percent:g}% per "
                reason += f"{cfg.up_limit.period_s:g} s)"
                desired, code = cap, ReasonCode.RATE_LIMITED
        elif desired < current:
            floor = rate_limit(current, events, obs.now, cfg.down_limit, up=False)
            if desired < floor:
                reason += (
                    f"; rate limit {floor} (-{cfg.down_limit.instances} or {cfg.down_limit.percent:g}% per "
                )
                reason += f"{cfg.down_limit.period_s:g} s)"
                desired, code = floor, ReasonCode.RATE_LIMITED
        bounded = clamp(desired, obs)
        if bounded != desired:
            reason += f"; bounded to [{obs.min_count}, {obs.max_count}] -> {bounded}"
            code = ReasonCode.LIMITED_MAX if bounded < desired else ReasonCode.LIMITED_MIN
        if bounded != current:
            blocked = in_cooldown(obs, events, bounded > current, cfg.cooldown_up_s, cfg.cooldown_down_s)
            if blocked:
                reason += f"; {blocked}, holding"
                bounded, code = clamp(current, obs), ReasonCode.COOLDOWN
        return Proposal(bounded, reason, figures=figures, code=code), state
