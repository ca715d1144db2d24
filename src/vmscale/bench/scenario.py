"""The scenario benchmark's parts, pure: who competes, under which load shapes, and how the goals
are judged (``benchmarks/bench_scenario.py`` runs them; ``vmscale bench scenario``).

Contenders (1-vCPU instances; each a real group):

* ``fixed``    one instance, no autoscaling (a yardstick; not run unless asked for);
* ``original`` the student system's rule: CPU above 75 % for 3 one-second samples, 1 -> 2, never back;
* ``hpa``      the Kubernetes HPA's defaults as they ship: a 15 s sync period, 10 % tolerance, a 300 s
               scale-down stabilization window, the default rate limits, and the CPU target
               ``kubectl autoscale`` sets without ``--cpu-percent`` (80 %, autoscaling/v1's default);
* ``vmscale``  vmscale's default policy (target tracking on CPU at 60 %, HPA semantics, 1 s
               interval): new instances boot cold;
* ``vmscale-warm``     the same with a warm pool of one paused instance;
* ``vmscale-vertical`` the same, vertical-first: instances grow live to 2 vCPUs before instances
                       are added;
* ``vmscale-clone``    the same with snapshot clones (libvirt only): new VMs are restored from
                       the group's golden snapshot instead of booted.

Every group may grow to what the host can run: one vCPU per host CPU (at most 4; a vCPU beyond the
host's cores adds cost and no capacity), the original rule excepted (its 2 instances): 1-vCPU
instances up to that count, or for vertical-first as many 2-vCPU instances as fit (one, on 2 cores).

Load shapes, open loop, in units of one instance's measured capacity (``cap``):

* ``step``   the original experiment: low, then ``overload`` x cap, then idle;
* ``ramp``   low, then a rate rising linearly from 0.2 x cap to ``ramp_to`` x cap, then idle;
* ``bursts`` short bursts of ``burst`` x cap every ``period`` (a few minutes), 0.3 x cap between:
             what a 300 s scale-down window keeps paying for, and what slow scale-up misses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vmscale.workload.load_plan import Phase

SHAPES = ("step", "ramp", "bursts")
ALL_CONTENDERS = (
    "fixed",
    "original",
    "hpa",
    "vmscale",
    "vmscale-warm",
    "vmscale-vertical",
    "vmscale-clone",
)


@dataclass(frozen=True)
class Contender:
    """One group's settings for ``runner.group_config``."""

    name: str
    policies: list[dict[str, Any]] = field(default_factory=list)
    min_count: int = 1
    max_count: int = 2
    interval_s: float = 1.0
    vmscale: bool = False  # one of vmscale's own variants (the goals are about the best of these)
    sections: Mapping[str, Any] = field(default_factory=dict)  # max_vcpus, scaling, warm_pool, libvirt...

    def config_args(self) -> dict[str, Any]:
        return {
            "policies": self.policies,
            "min_count": self.min_count,
            "max_count": self.max_count,
            "interval_s": self.interval_s,
            **self.sections,
        }


ORIGINAL_RULE = {
    "kind": "threshold",
    "name": "original",
    "metric": "cpu",
    "upper": 75,
    "samples_up": 3,
    "step": 1,
}
HPA_DEFAULTS = {
    "kind": "target",
    "name": "hpa",
    "metric": "cpu",
    "target": 80.0,
    "tolerance": 0.1,
    "up_stabilization_s": 0.0,
    "down_stabilization_s": 300.0,
    "up_limit": {"instances": 4, "percent": 100.0, "period_s": 15.0},
    "down_limit": {"instances": 0, "percent": 100.0, "period_s": 15.0},
}
HPA_SYNC_PERIOD_S = 15.0
VERTICAL_MAX_VCPUS = 2


def contenders(provider: str, host_cpus: int) -> dict[str, Contender]:
    """Every contender that ``provider`` can run, by name, in ``ALL_CONTENDERS`` order."""
    most = max(2, min(4, host_cpus))
    made = [
        Contender("fixed", max_count=1),
        Contender("original", [ORIGINAL_RULE], max_count=2),
        Contender("hpa", [HPA_DEFAULTS], max_count=most, interval_s=HPA_SYNC_PERIOD_S),
        Contender("vmscale", max_count=most, vmscale=True),
        Contender(
            "vmscale-warm",
            max_count=most,
            vmscale=True,
            sections={"warm_pool": {"size": 1, "kind": "paused"}},
        ),
        Contender(
            "vmscale-vertical",
            max_count=max(1, most // VERTICAL_MAX_VCPUS),
            vmscale=True,
            sections={"max_vcpus": VERTICAL_MAX_VCPUS, "scaling": {"mode": "vertical-first"}},
        ),
    ]
    if provider == "libvirt":
        made.append(
            Contender(
                "vmscale-clone", max_count=most, vmscale=True, sections={"libvirt": {"launch": "clone"}}
            )
        )
    return {c.name: c for c in made}


DEFAULT_CONTENDERS = ("original", "hpa", "vmscale", "vmscale-warm", "vmscale-vertical", "vmscale-clone")


@dataclass(frozen=True)
class ShapeLengths:
    """Seconds of each part of the load shapes (processes and TCG guests differ, and --quick)."""

    low_s: float
    high_s: float
    idle_s: float
    ramp_s: float
    period_s: float  # one burst and the quiet after it
    burst_s: float
    bursts: int


LENGTHS = {
    ("process", False): ShapeLengths(15, 60, 30, 90, 120, 20, 3),
    ("process", True): ShapeLengths(5, 20, 10, 30, 40, 10, 2),
    # A TCG guest boots in ~7 s and serves ~14x slower: a high phase must outlast a boot.
    ("libvirt", False): ShapeLengths(15, 90, 40, 120, 120, 30, 3),
    ("libvirt", True): ShapeLengths(8, 45, 20, 45, 60, 20, 2),
}


def phases(
    shape: str, lengths: ShapeLengths, n: int, cap: float, *, overload: float, ramp_to: float, burst: float
) -> list[Phase]:
    """The open-loop phases of one load shape (``n``: the heavy request; ``cap``: one instance's
    requests per second)."""
    low = Phase(mode="low", duration_s=lengths.low_s, rate=2.0, name="low")
    idle = Phase(mode="idle", duration_s=lengths.idle_s, name="idle")
    if shape == "step":
        return [
            low,
            Phase(mode="step", duration_s=lengths.high_s, rate=round(overload * cap, 2), n=n, name="high"),
            idle,
        ]
    if shape == "ramp":
        ramp = Phase(
            mode="ramp",
            duration_s=lengths.ramp_s,
            rate_start=round(0.2 * cap, 2),
            rate=round(ramp_to * cap, 2),
            n=n,
            name="ramp",
        )
        return [low, ramp, idle]
    if shape == "bursts":
        rows: list[tuple[float, float]] = []
        quiet = (lengths.period_s - lengths.burst_s) / 2
        for k in range(lengths.bursts):
            t = k * lengths.period_s
            rows += [
                (t, round(0.3 * cap, 2)),
                (t + quiet, round(burst * cap, 2)),
                (t + quiet + lengths.burst_s, round(0.3 * cap, 2)),
            ]
        train = Phase(
            mode="trace", duration_s=lengths.period_s * lengths.bursts, trace=tuple(rows), n=n, name="bursts"
        )
        return [train, idle]
    raise ValueError(f"unknown load shape {shape!r}; known: {', '.join(SHAPES)}")


def slo_key(slo: float) -> str:
    """Column name for the seconds over one SLO: over_slo_0.5s, over_slo_2s."""
    return f"over_slo_{slo:g}s"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return round(a / b, 3)


def judge(medians: Mapping[str, Mapping[str, Any]], slo: float, own: set[str]) -> dict[str, Any]:
    """The goals for one shape and SLO: vmscale's best variant (the fewest seconds over the SLO
    among its variants that cost no more than the original rule, in instance-seconds or
    vCPU-seconds) spends <= 1/4 of the original rule's seconds over the SLO and <= 1/2 of the HPA
    defaults', at <= 1.0x the original's cost. Without such a variant, the cheapest is named."""
    key = slo_key(slo)
    original, hpa = medians.get("original"), medians.get("hpa")
    if original is None or not own:
        return {"best": None}

    def cost_ratios(name: str) -> tuple[float | None, float | None]:
        f = medians[name]
        return (
            ratio(f.get("instance_seconds"), original.get("instance_seconds")),
            ratio(f.get("vcpu_seconds"), original.get("vcpu_seconds")),
        )

    def affordable(name: str) -> bool:
        return any(r is not None and r <= 1.0 for r in cost_ratios(name))

    within = [n for n in own if affordable(n)]
    pool = within or own
    best = min(pool, key=lambda n: (medians[n][key], min(r for r in cost_ratios(n) if r is not None)))
    inst, vcpu = cost_ratios(best)
    vs_original = ratio(medians[best][key], original[key])
    vs_hpa = ratio(medians[best][key], hpa[key]) if hpa is not None else None
    return {
        "best": best,
        f"{key}_best_over_original": vs_original,
        f"{key}_best_over_hpa": vs_hpa,
        "instance_seconds_best_over_original": inst,
        "vcpu_seconds_best_over_original": vcpu,
        "goals": {
            "<= 1/4 of the original's seconds over the SLO": vs_original is not None and vs_original <= 0.25,
            "<= 1/2 of the HPA defaults'": vs_hpa is not None and vs_hpa <= 0.5,
            "<= 1.0x the original's instance- or vCPU-seconds": affordable(best),
        },
    }
