"""The decision-log record: everything needed to answer "why did it scale at 12:03:07?".

The controller writes one per decision. It holds the inputs (time, count in force, bounds, each
instance's state and newest sample, the group figures the policies saw), the policy that decided, the
result and the reason in words, and the policy state after the decision — so feeding the recorded
snapshot and the previous record's state back into ``PolicySet.decide`` reproduces it.
"""

from __future__ import annotations

from typing import Any

from vmscale.model import Decision, Metric, Snapshot
from vmscale.policy.base import observe
from vmscale.policy.combine import PolicySetState


def decision_record(snapshot: Snapshot, decision: Decision, state: PolicySetState) -> dict[str, Any]:
    obs = observe(snapshot)
    instances: dict[str, dict[str, Any]] = {}
    for inst in snapshot.instances:
        latest = inst.samples[-1] if inst.samples else None
        instances[inst.name] = {
            "state": inst.state.value,
            "vcpus": inst.vcpus,
            "sample_t": None if latest is None else latest.t,
            "cpu": inst.latest(Metric.CPU),
            "rps": inst.latest(Metric.RPS),
            "latency_p95": inst.latest(Metric.LATENCY_P95),
            "inflight": inst.latest(Metric.INFLIGHT),
            **({"extra": dict(latest.extra)} if latest is not None and latest.extra else {}),
        }
    group: dict[str, Any] = {"ready": obs.ready, "unready": obs.unready}
    for metric, view in obs.metrics.items():
        group[str(metric)] = view.mean
        if view.missing:
            group[f"{metric}_missing"] = view.missing
        if view.note:
            group[f"{metric}_note"] = view.note
    return {
        "now": snapshot.now,
        "inputs": {
            "desired": snapshot.desired,
            "min": snapshot.min_count,
            "max": snapshot.max_count,
            "instances": instances,
            "group": group,
        },
        "policy": decision.policy,
        "result": {
            "desired": decision.desired,
            "direction": decision.direction.value,
            "current": decision.current,
            "figures": decision.figures.to_dict(),
            "code": decision.code.value,
        },
        "reason": decision.reason,
        "state": state.to_dict(),
    }
