"""Target tracking with the Kubernetes HPA semantics, step by step as the HPA does it.

1. **Ratio** (``replica_recommendation``): ``ratio = mean / target`` over ready instances that reported;
   inside the dead band ``|1 - ratio| <= tolerance`` nothing changes; otherwise
   ``desired = ceil(ready_reporting x ratio)``. When some ready instances have no sample, or the ratio
   says "up" while instances are still booting, the HPA's conservative correction applies: missing
   instances count as 100% (cpu; the target for rps) when scaling in and 0% when scaling out,
   booting instances count as 0% when scaling out; if that correction lands in the dead band or
   flips the direction, nothing changes. (The HPA counts not-ready pods as 0%, i.e. as capacity that
   is on its way, which damps a scale-up that boot delay would otherwise double.)
   ``latency_p95`` is one group-level figure: ``desired = ceil(ready x observed / target)``.
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
from vmscale.model import Metric
from vmscale.policy.base import (
    MetricView,
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


def replica_recommendation(
    view: MetricView,
    current: int,
    ready: int,
    unready: int,
    metric: str,
    target: float,
    tolerance: float,
) -> tuple[int, str]:
    """The HPA's ratio step (``calcPlainMetricReplicas``). Returns the count and the arithmetic in words.

    A group-level figure (``latency_p95``, an external per-group query) scales the ready count by
    its ratio to the target; a per-instance one takes the mean over the instances that reported.
    """
    name = str(metric)
    if view.mean is None:
        return current, f"{no_data(name, view)}; holding at {current}"
    observed = view.mean
    ratio = observed / target
    side = "over" if observed > target else "under"
    head = f"{name} {fmt(metric, observed)} {side} target {fmt(metric, target, exact=True)}"
    if metric == Metric.LATENCY_P95 or view.group_level:
        if abs(1.0 - ratio) <= tolerance:
            return current, f"{head}: within the {tolerance:g} dead band"
        n = math.ceil(ready * ratio)
        return (
            n,
            f"{head} with {plural(ready, 'ready instance')} -> ceil({ready}*{observed:.3g}/{target:g})={n}",
        )
    count, total = view.reporting, view.total
    across = f"across {plural(count, 'ready instance')}"
    up_with_unready = unready > 0 and ratio > 1.0
    if not up_with_unready and view.missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return current, f"{head} {across}: within the {tolerance:g} dead band"
        n = math.ceil(count * ratio)
        return n, f"{head} {across} -> ceil({count}*{observed:.3g}/{target:g})={n}"
    notes = []
    if view.missing:
        fill = (max(100.0, target) if metric == Metric.CPU else target) if ratio < 1.0 else 0.0
        total += fill * view.missing
        count += view.missing
        notes.append(f"{view.missing} without samples counted as {fmt(metric, fill)}")
    if up_with_unready:
        count += unready
        notes.append(f"{unready} not ready counted as {fmt(metric, 0.0)}")
    new_ratio = total / count / target
    corrected = f"{head} {across}; {', '.join(notes)} -> {fmt(metric, total / count)}"
    if abs(1.0 - new_ratio) <= tolerance:
        return current, f"{corrected}: within the dead band, holding"
    if (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current, f"{corrected}: direction flips, holding"
    n = math.ceil(count * new_ratio)
    if (new_ratio < 1.0 and n > current) or (new_ratio > 1.0 and n < current):
        return current, f"{corrected} -> {n} is the wrong way, holding"
    return n, f"{corrected} -> ceil({count}*{total / count:.3g}/{target:g})={n}"


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
        raw, reason = replica_recommendation(
            view, current, obs.ready, obs.unready, cfg.metric, cfg.target, cfg.tolerance
        )
        figures = {"target": cfg.target, "ready": float(obs.ready), "recommendation": float(raw)}
        if view.mean is not None:
            figures["observed"] = view.mean
        if view.mean is None:  # no data: HPA does nothing and records nothing
            return Proposal(clamp(current, obs), reason, figures=figures), state
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
        if desired > current:
            cap = rate_limit(current, events, obs.now, cfg.up_limit, up=True)
            if desired > cap:
                reason += f"; rate limit {cap} (+{cfg.up_limit.instances} or {cfg.up_limit.percent:g}% per "
                reason += f"{cfg.up_limit.period_s:g} s)"
                desired = cap
        elif desired < current:
            floor = rate_limit(current, events, obs.now, cfg.down_limit, up=False)
            if desired < floor:
                reason += (
                    f"; rate limit {floor} (-{cfg.down_limit.instances} or {cfg.down_limit.percent:g}% per "
                )
                reason += f"{cfg.down_limit.period_s:g} s)"
                desired = floor
        bounded = clamp(desired, obs)
        if bounded != desired:
            reason += f"; bounded to [{obs.min_count}, {obs.max_count}] -> {bounded}"
        if bounded != current:
            blocked = in_cooldown(obs, events, bounded > current, cfg.cooldown_up_s, cfg.cooldown_down_s)
            if blocked:
                reason += f"; {blocked}, holding"
                bounded = clamp(current, obs)
        figures["desired"] = float(bounded)
        return Proposal(bounded, reason, figures=figures), state
