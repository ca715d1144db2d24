"""The demo's group config and its load scenario, in one place so both are easy to read.

The story: one backend, a light load ("low"), then more work than one instance can do
("high", open loop at ``overload`` x one instance's measured capacity), then nothing ("idle").
A good autoscaler adds a second instance during "high" (latency falls) and removes it
during "idle". ``quick`` shortens everything so the whole run fits in under 45 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmscale.config import parse_config
from vmscale.config.libvirt import TCG_HEALTH
from vmscale.config.schema import VmscaleConfig
from vmscale.workload.load_plan import Phase


@dataclass(frozen=True)
class DemoPlan:
    low_s: float
    high_s: float
    idle_s: float
    interval_s: float
    scale_down_window_s: float
    # One instance gets `overload` x the work it can do; two instances are at overload/2 each,
    # inside the target band (target 70%, tolerance 10%), so the group settles at two.
    overload: float = 1.4
    target_cpu: float = 70.0
    # Requests in progress per vCPU: about 1.5 at 70 % busy, growing without bound past 100 %.
    target_inflight: float = 3.0
    up_cooldown_s: float = 3.0
    request_s: float = 0.1  # the heavy request's cost on one idle worker, found by calibration

    @property
    def total_s(self) -> float:
        return self.low_s + self.high_s + self.idle_s

    def phases(self, heavy_n: int, capacity_rps: float) -> list[Phase]:
        return [
            Phase(mode="low", duration_s=self.low_s, rate=2.0, name="low"),
            Phase(
                mode="step",
                duration_s=self.high_s,
                rate=round(self.overload * capacity_rps, 2),
                n=heavy_n,
                name="high",
            ),
            Phase(mode="idle", duration_s=self.idle_s, name="idle"),
        ]


FULL = DemoPlan(low_s=20, high_s=60, idle_s=40, interval_s=1.0, scale_down_window_s=15)
QUICK = DemoPlan(low_s=5, high_s=17, idle_s=12, interval_s=0.5, scale_down_window_s=3)
# A TCG guest needs ~10 s to boot and serves ~14x slower: even the quick VM run needs a longer high phase.
VM_QUICK = DemoPlan(low_s=8, high_s=45, idle_s=30, interval_s=1.0, scale_down_window_s=5)


def plan_for(provider: str, quick: bool) -> DemoPlan:
    if provider == "libvirt":
        return VM_QUICK if quick else FULL
    return QUICK if quick else FULL


def demo_config(
    plan: DemoPlan,
    state_dir: Path,
    *,
    provider: str = "process",
    lb: str = "none",
    api_bind: str,
    base_port: int = 18100,
    lb_bind: str = "127.0.0.1:8080",
    lb_stats_bind: str = "127.0.0.1:8404",
) -> VmscaleConfig:
    data: dict[str, Any] = {
        "group": {
            "name": "demo",
            "min": 1,
            # Under TCG each guest vCPU needs a whole host core: on a small host a third VM adds no capacity.
            "max": 3 if provider == "process" else 2,
            "initial": 1,
            "interval_s": plan.interval_s if provider == "process" else max(plan.interval_s, 1.0),
        },
        "provider": {"kind": provider, "process": {"base_port": base_port}},
        "template": {"vcpus": 1, "memory_mb": 512},
        "policies": [
            {
                "kind": "target",
                "name": "cpu-target",
                "metric": "cpu",
                "target": plan.target_cpu,
                "down_stabilization_s": plan.scale_down_window_s,
                # Right after a scale-up the first instance is still working off its backlog and
                # reads hot: give the new capacity a moment to show before adding more.
                "cooldown_up_s": plan.up_cooldown_s if provider == "process" else 12.0,
            },
            # CPU reads low when the machine is so busy that a saturated backend cannot burn its
            # quota; requests waiting in the backend still show the overload. The larger scale-up
            # of the two wins; scale-in needs both to agree.
            {
                "kind": "target",
                "name": "queue-target",
                "metric": "inflight",
                "target": plan.target_inflight,
                "down_stabilization_s": plan.scale_down_window_s,
                # A queue keeps growing until new capacity serves; give it time to, rather than
                # adding an instance per interval while the first one boots.
                # (A VM takes seconds to boot under TCG: wait about that long.)
                "cooldown_up_s": plan.up_cooldown_s if provider == "process" else 12.0,
            },
        ],
        "health": {"timeout_s": 1.0, "boot_timeout_s": 30} if provider == "process" else TCG_HEALTH,
        # Long enough for clients to hear of the removal before in-flight requests are counted.
        "drain": {
            "timeout_s": 10 if provider == "process" else 30,
            "grace_s": 0.3 if provider == "process" else 2.0,
        },
        "lb": {"kind": lb, "haproxy": {"bind": lb_bind, "stats_bind": lb_stats_bind}},
        "api": {"bind": api_bind},
        "state": {"dir": str(state_dir)},
    }
    return parse_config(data, "demo")
