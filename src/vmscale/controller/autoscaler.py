"""The autoscaler: the desired count, the pause switch, the policies' memory and the last decision.

It decides *how many* (the policies are pure; see ``vmscale.policy``); the reconciler carries the
count out. Its state is one frozen ``AutoscalerState`` replaced as a whole under a small lock, so the
API thread (manual changes, reads) and the loop thread (decisions) never see half an update, and
nothing slow (store writes, events) happens while the lock is held.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from vmscale.clock import Clock
from vmscale.config.schema import GroupConfig
from vmscale.controller.fleet import Instance, Purpose
from vmscale.controller.membership import Traffic
from vmscale.controller.records import DecisionLog, StoreRecorder
from vmscale.event_kinds import DecisionApplied
from vmscale.metrics import ControllerMetrics
from vmscale.metrics_sources import ExternalMetrics
from vmscale.model import (
    Decision,
    Direction,
    InstanceState,
    Metric,
    ReasonCode,
    Sample,
    Snapshot,
    direction_of,
)
from vmscale.policy import PolicySet, PolicySetState, decision_record, observe
from vmscale.store import GroupRow

S = InstanceState


@dataclass(frozen=True, slots=True)
class AutoscalerState:
    desired: int
    paused: bool
    policy_state: PolicySetState
    last_decision: dict[str, Any] | None = None
    last_scale_up: float | None = None  # monotonic: the decision new capacity answers


def build_snapshot(
    instances: Iterable[Instance],
    desired: int,
    group: GroupConfig,
    traffic: Traffic,
    now: float,
    external: ExternalMetrics | None = None,
) -> Snapshot:
    """What the policies see: the group's instances (and the ones draining out of it) with their
    samples of the last ``history_s``, the balancer's group-level figures, and this tick's
    external metrics (group values, and why a metric has no data)."""
    since = now - group.history_s
    return Snapshot(
        now=now,
        desired=desired,
        min_count=group.min,
        max_count=group.max,
        instances=tuple(
            i.snapshot(since)
            for i in instances
            if i.in_group or (i.state is S.DRAINING and i.purpose is Purpose.GROUP)
        ),
        group_samples=(
            Sample(
                t=now,
                latency_p95=traffic.latency_p95_s,
                rps=traffic.rps,
                extra=dict(external.group) if external is not None else {},
            ),
        ),
        metric_notes=dict(external.notes) if external is not None else {},
    )


class Autoscaler:
    def __init__(
        self,
        policies: PolicySet,
        group: GroupConfig,
        recorder: StoreRecorder,
        log: DecisionLog,
        metrics: ControllerMetrics,
        clock: Clock,
    ) -> None:
        self.policies = policies
        self._group = group
        self.recorder = recorder
        self._log = log
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._state = AutoscalerState(group.initial_count, False, policies.initial_state())
        self._saved_policy_state: dict[str, Any] = {}

    @property
    def state(self) -> AutoscalerState:
        return self._state

    def restore(self, row: GroupRow | None) -> None:
        """After a restart: the count, pause flag and policy memory come back, clamped to [min, max]."""
        if row is None:
            return
        try:
            policy_state = PolicySetState.from_dict(row.policy_state)
        except (KeyError, TypeError, ValueError):
            policy_state = self.policies.initial_state()  # the policies changed since: start afresh
        desired = max(self._group.min, min(self._group.max, row.desired))
        with self._lock:
            self._state = replace(self._state, desired=desired, paused=row.paused, policy_state=policy_state)

    def save(self) -> None:
        s = self._state
        self.recorder.save_group(s.desired, s.paused, s.policy_state)

    def decide(self, snap: Snapshot) -> Decision:
        """One automatic decision (loop thread). Applied only when the count changes."""
        decision, policy_state = self.policies.decide(snap, self._state.policy_state)
        for metric, view in observe(snap).metrics.items():
            if isinstance(metric, Metric):  # external metrics are the user's own series already
                self._metrics.observe_policy_metric(metric, view.mean)  # None clears a stale figure
        with self._lock:
            self._state = replace(self._state, policy_state=policy_state)
        if decision.desired != snap.desired:
            self._apply(decision, "autoscaler", decision_record(snap, decision, policy_state))
        as_dict = policy_state.to_dict()
        if as_dict != self._saved_policy_state:
            self._saved_policy_state = as_dict
            self.save()
        return decision

    def set_desired(self, count: int, actor: str) -> None:
        lo, hi = self._group.min, self._group.max
        if not lo <= count <= hi:
            raise ValueError(f"desired must be within [min, max] = [{lo}, {hi}], got {count}")
        current = self._state.desired
        words = f"manual: set to {count} by {actor}"
        d = Decision(count, direction_of(current, count), words, "manual", current, code=ReasonCode.MANUAL)
        self._apply(d, actor, {"now": self._clock.now(), "manual": True})

    def set_paused(self, paused: bool, actor: str) -> None:
        with self._lock:
            self._state = replace(self._state, paused=paused)
        self.save()
        verb = "paused" if paused else "resumed"
        desired = self._state.desired
        self._log.applied(
            DecisionApplied(
                desired, desired, "none", f"automatic scaling {verb} by {actor}", "manual", actor, action=verb
            ),
            {"action": verb},
        )

    def reset(self) -> None:
        """A clean stop that removed everything starts afresh next time, at the configured count."""
        with self._lock:
            self._state = replace(self._state, desired=self._group.initial_count)
        self.save()

    def _apply(self, decision: Decision, actor: str, record: dict[str, Any]) -> None:
        applied = DecisionApplied(
            desired=decision.desired,
            previous=self._state.desired,
            direction=decision.direction.value,
            reason=decision.reason,
            policy=decision.policy,
            actor=actor,
            figures=decision.figures.to_dict(),
            code=decision.code.value,
        )
        with self._lock:
            up = decision.direction is Direction.UP
            self._state = replace(
                self._state,
                desired=decision.desired,
                last_decision={**applied.to_dict(), "t": self._clock.now()},
                last_scale_up=self._clock.monotonic() if up else self._state.last_scale_up,
            )
        self._log.applied(applied, record)
        self.save()
