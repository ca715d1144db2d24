"""The autoscaler: the desired count, the pause switch, the policies' memory and the last decision.

It decides *how many* (the policies are pure; see ``vmscale.policy``); the reconciler carries the
count out. Its state is one frozen ``AutoscalerState`` replaced as a whole under a small lock, so the
API thread (manual changes, reads) and the loop thread (decisions) never see half an update, and
nothing slow (store writes, events) happens while the lock is held.

Vertical-first (``[scaling] mode``, given as a ``Sizing``): the policies count vCPUs and
``decide_vertical`` places the change; the decision's instance count becomes ``desired`` and its
sizes and named removals the state's ``shape``, which the reconciler carries out exactly. The
policies' memory is then in vCPUs: a memory saved in the other unit is not restored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from vmscale.clock import Clock
from vmscale.config.schema import GroupConfig, GroupSettings
from vmscale.controller.fleet import Instance, Purpose
from vmscale.controller.membership import Traffic
from vmscale.controller.records import UNIT_KEY, DecisionLog, StoreRecorder, log
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
from vmscale.plan.scale import Shape
from vmscale.policy import PolicySet, PolicySetState, decision_record, observe
from vmscale.policy.vertical import CapacityPlan, Route, Sizing, decide_vertical
from vmscale.providers.base import Resizer
from vmscale.store import GroupRow

S = InstanceState
ExternalSource = Callable[[list[str]], ExternalMetrics]


@dataclass(frozen=True, slots=True)
class AutoscalerState:
    desired: int
    paused: bool
    policy_state: PolicySetState
    last_decision: dict[str, Any] | None = None
    last_scale_up: float | None = None  # monotonic: the decision new capacity answers
    shape: Shape = field(default_factory=Shape)  # vertical-first: the last decision's sizes, removals


@dataclass(frozen=True, slots=True)
class Scaling:
    """The group's bounds, and how a decision changes capacity (``vertical`` None: horizontal)."""

    group: GroupConfig
    vertical: Sizing | None = None

    @property
    def unit(self) -> str:
        return "vcpus" if self.vertical is not None else "instances"


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


def vertical_sizing(cfg: GroupSettings, resizer: Resizer | None) -> Sizing | None:
    """The sizes a vertical-first group decides with, or None to decide horizontally (the mode is
    horizontal, or the provider cannot resize: ``config check`` refuses that, so only a provider
    given in code gets here, and is told)."""
    if cfg.scaling.mode != "vertical-first":
        return None
    if resizer is None:
        log.warning("scaling.mode = 'vertical-first' but the provider cannot resize: deciding horizontally")
        return None
    return Sizing(cfg.template.vcpus, cfg.template.vcpu_ceiling, can_shrink=bool(resizer.can_shrink))


class Autoscaler:
    def __init__(
        self,
        policies: PolicySet,
        group: GroupConfig,
        recorder: StoreRecorder,
        log: DecisionLog,
        metrics: ControllerMetrics,
        clock: Clock,
        external: ExternalSource | None = None,
        *,
        vertical: Sizing | None = None,
    ) -> None:
        """``external`` reads the user's external metric sources (``vmscale.integrations``) for
        the ready instances, once per full tick; without it the policies see built-in metrics only.
        ``vertical``: decide vertical-first with these sizes (None: horizontal, the default)."""
        self.policies = policies
        self._external = external
        self._scaling = Scaling(group, vertical)
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

    def external_metrics(self, ready: list[str]) -> ExternalMetrics | None:
        """This tick's external metrics for the ``ready`` instances (None when none are configured)."""
        return self._external(ready) if self._external is not None else None

    def restore(self, row: GroupRow | None) -> None:
        """After a restart: the count, pause flag and policy memory come back, clamped to [min, max]."""
        if row is None:
            return
        try:
            policy_state = PolicySetState.from_dict(row.policy_state)
        except (KeyError, TypeError, ValueError):
            policy_state = self.policies.initial_state()  # the policies changed since: start afresh
        if row.policy_state.get(UNIT_KEY, "instances") != self._scaling.unit:
            policy_state = self.policies.initial_state()  # counted in the other unit: meaningless now
        group = self._scaling.group
        desired = max(group.min, min(group.max, row.desired))
        with self._lock:
            self._state = replace(self._state, desired=desired, paused=row.paused, policy_state=policy_state)

    def save(self) -> None:
        s = self._state
        self.recorder.save_group(s.desired, s.paused, s.policy_state, unit=self._scaling.unit)

    def decide(self, snap: Snapshot) -> Decision:
        """One automatic decision (loop thread). Applied only when the count (or, vertical-first,
        the capacity) changes."""
        sizing = self._scaling.vertical
        plan: CapacityPlan | None = None
        if sizing is None:
            decision, policy_state = self.policies.decide(snap, self._state.policy_state)
        else:
            plan, policy_state = decide_vertical(self.policies, snap, self._state.policy_state, sizing)
            decision = plan.decision
        for metric, view in observe(snap).metrics.items():
            if isinstance(metric, Metric):  # external metrics are the user's own series already
                self._metrics.observe_policy_metric(metric, view.mean)  # None clears a stale figure
        with self._lock:
            self._state = replace(self._state, policy_state=policy_state)
        record = decision_record(snap, decision, policy_state)
        if plan is not None and plan.route is not Route.NONE:
            self._apply_plan(plan, snap, {**record, "capacity": plan.to_dict()})
        elif plan is None and decision.desired != snap.desired:
            self._apply(decision, "autoscaler", record)
        as_dict = policy_state.to_dict()
        if as_dict != self._saved_policy_state:
            self._saved_policy_state = as_dict
            self.save()
        return decision

    def _apply_plan(self, plan: CapacityPlan, snap: Snapshot, record: dict[str, Any]) -> None:
        """A vertical-first decision: the count, and the shape the reconciler carries out. The
        policies' reason code says why they wanted the vCPUs; ``placement`` says where they went."""
        d = plan.decision
        vcpus = {
            "vcpus_before": plan.vcpus_before,
            "vcpus_wanted": d.desired,
            "vcpus_after": plan.vcpus_after,
        }
        counted = replace(d, desired=plan.desired, reason=plan.reason, current=snap.desired)
        shape = Shape(tuple((r.name, r.vcpus_to) for r in plan.resizes), plan.remove, plan.reason)
        self._apply(counted, "autoscaler", record, placement=plan.placement, shape=shape, extra=vcpus)

    def set_desired(self, count: int, actor: str) -> None:
        lo, hi = self._scaling.group.min, self._scaling.group.max
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
            self._state = replace(self._state, desired=self._scaling.group.initial_count, shape=Shape())
        self.save()

    def _apply(
        self,
        decision: Decision,
        actor: str,
        record: dict[str, Any],
        *,
        placement: str = "",
        shape: Shape = Shape(),
        extra: Mapping[str, float] = MappingProxyType({}),
    ) -> None:
        """Make ``decision`` the one in force. A manual change (or a horizontal decision) brings an
        empty shape: the sizes reached stay, and scale-in picks its own victims again."""
        applied = DecisionApplied(
            desired=decision.desired,
            previous=self._state.desired,
            direction=decision.direction.value,
            reason=decision.reason,
            policy=decision.policy,
            actor=actor,
            figures={**decision.figures.to_dict(), **dict(extra)},
            code=decision.code.value,
            placement=placement,
        )
        with self._lock:
            up = decision.direction is Direction.UP
            self._state = replace(
                self._state,
                desired=decision.desired,
                last_decision={**applied.to_dict(), "t": self._clock.now()},
                last_scale_up=self._clock.monotonic() if up else self._state.last_scale_up,
                shape=shape,
            )
        self._log.applied(applied, record)
        self.save()
