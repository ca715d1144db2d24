"""Pure scaling policies: no I/O, no clock reads, no threads.

    ps = build_policy_set(cfg.policies, min_count=cfg.group.min, max_count=cfg.group.max)
    state = ps.initial_state()
    decision, state = ps.decide(snapshot, state)        # same inputs -> same outputs
    store.save(state.to_dict()); state = PolicySetState.from_dict(saved)

Modules: ``base`` (observation, proposal, state, the Policy protocol), ``threshold``, ``target``
(Kubernetes HPA), ``step``, ``schedule``, ``combine`` (several policies -> one decision),
``record`` (the decision-log record).

With no ``[[policies]]`` in the config the group gets ``DEFAULT_POLICY``: a ``target`` on CPU at 60%
with the HPA defaults. Why 60%: a group at 60% can absorb a surge of 1/0.6 = 1.67x on the instances
it already has while new ones boot (tens of seconds for a VM), and the 10% dead band (54-66%) keeps
it from reacting to noise; higher targets save cost but leave little headroom during the boot delay,
lower ones pay for idle capacity.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmscale.config.policy import (
    PolicyConfig,
    SchedulePolicyConfig,
    StepPolicyConfig,
    TargetPolicyConfig,
    ThresholdPolicyConfig,
)
from vmscale.policy.base import MetricView, Observation, Policy, PolicyState, Proposal, observe
from vmscale.policy.combine import PolicySet, PolicySetState, combine
from vmscale.policy.record import decision_record
from vmscale.policy.schedule import SchedulePolicy
from vmscale.policy.step import StepPolicy
from vmscale.policy.target import TargetPolicy
from vmscale.policy.threshold import ThresholdPolicy

__all__ = [
    "DEFAULT_POLICY",
    "MetricView",
    "Observation",
    "Policy",
    "PolicySet",
    "PolicySetState",
    "PolicyState",
    "Proposal",
    "build_policy",
    "build_policy_set",
    "combine",
    "decision_record",
    "observe",
]

DEFAULT_POLICY = TargetPolicyConfig(name="target", target=60.0)


def build_policy(cfg: PolicyConfig) -> Policy:
    if isinstance(cfg, ThresholdPolicyConfig):
        return ThresholdPolicy(cfg)
    if isinstance(cfg, TargetPolicyConfig):
        return TargetPolicy(cfg)
    if isinstance(cfg, StepPolicyConfig):
        return StepPolicy(cfg)
    if isinstance(cfg, SchedulePolicyConfig):
        return SchedulePolicy(cfg)
    raise TypeError(f"unknown policy config {type(cfg).__name__}")


def build_policy_set(configs: Sequence[PolicyConfig], *, min_count: int, max_count: int) -> PolicySet:
    """The group's policies (``DEFAULT_POLICY`` if none are configured), bound to ``[min, max]``."""
    if min_count > max_count:
        raise ValueError(f"min_count ({min_count}) must be <= max_count ({max_count})")
    chosen = list(configs) or [DEFAULT_POLICY]
    return PolicySet(tuple(build_policy(c) for c in chosen), min_count=min_count, max_count=max_count)
