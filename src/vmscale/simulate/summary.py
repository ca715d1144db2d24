"""Figures of a simulated run, and several policies side by side.

* ``instance_seconds``: live instances (booting included) x step, summed: what the run costs;
* ``unserved_seconds``: seconds in which some demand did not fit on the ready instances (SLO
  violation); ``unserved_work``: how much, in instance-seconds of work;
* ``longest_unserved_s``: the longest unbroken stretch of unserved demand (how long it took to reach
  enough capacity after the worst surge);
* ``overprovision_peak`` / ``overprovision_mean``: live instances beyond the demand (never negative);
* ``scale_events``: changes of the desired count; ``reversals``: a change whose direction differs
  from the previous change's (flapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vmscale.policy import PolicySet
from vmscale.simulate.engine import Run, SimParams, simulate
from vmscale.simulate.trace import Trace

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Summary:
    name: str
    duration_s: float
    instance_seconds: float
    unserved_seconds: float
    unserved_work: float
    longest_unserved_s: float
    overprovision_peak: float
    overprovision_mean: float
    scale_events: int
    scale_ups: int
    scale_downs: int
    reversals: int
    peak_instances: int
    final_instances: int

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def summarise(run: Run) -> Summary:
    line, dt = run.timeline, run.params.step_s
    n = len(line.t)
    unserved_steps = longest = streak = 0
    over_peak = over_sum = 0.0
    for live, demand, unserved in zip(line.live, line.demand, line.unserved, strict=True):
        if unserved > _EPS:
            unserved_steps += 1
            streak += 1
            longest = max(longest, streak)
        else:
            streak = 0
        over = max(live - demand, 0.0)
        over_sum += over
        over_peak = max(over_peak, over)
    ups = sum(1 for c in run.changes if c.after > c.before)
    reversals = sum(
        1
        for a, b in zip(run.changes, run.changes[1:], strict=False)
        if (a.after > a.before) != (b.after > b.before)
    )
    return Summary(
        name=run.name,
        duration_s=n * dt,
        instance_seconds=sum(line.live) * dt,
        unserved_seconds=unserved_steps * dt,
        unserved_work=sum(line.unserved) * dt,
        longest_unserved_s=longest * dt,
        overprovision_peak=over_peak,
        overprovision_mean=over_sum / n if n else 0.0,
        scale_events=len(run.changes),
        scale_ups=ups,
        scale_downs=len(run.changes) - ups,
        reversals=reversals,
        peak_instances=max(line.live, default=0),
        final_instances=line.live[-1] if line.live else 0,
    )


def run_to_dict(run: Run, *, timeline: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "policy": run.name,
        "params": {f: getattr(run.params, f) for f in run.params.__slots__},
        "summary": summarise(run).to_dict(),
        "events": [
            {"t": c.t, "from": c.before, "to": c.after, "policy": c.policy, "reason": c.reason}
            for c in run.changes
        ],
    }
    if timeline:
        line = run.timeline
        out["timeline"] = {
            "t": line.t,
            "demand": line.demand,
            "ready": line.ready,
            "live": line.live,
            "unserved": line.unserved,
            "cpu": line.cpu,
        }
    return out


def compare(sets: Mapping[str, PolicySet], trace: Trace, params: SimParams) -> dict[str, Run]:
    """Each named policy set over the same trace and model, in the given order."""
    return {name: simulate(ps, trace, params, name=name) for name, ps in sets.items()}
