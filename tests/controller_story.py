"""A real ``Controller`` driven over fakes (provider, balancer, health, clock) through a short
story: ready, traffic, a scale-up whose first launch fails, a health failure and its replacement,
a scale-in. Its metrics are then what a running controller sets, never values set by hand, for
tests that check the /metrics exposition (promtool)."""

from __future__ import annotations

from pathlib import Path

from tests.support.controller_rig import Rig
from vmscale.controller import Controller
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.providers.fake import temporary


def run_story(state_dir: Path) -> Controller:
    lb = FakeLoadBalancer()
    rig = Rig(
        state_dir,
        lb=lb,
        policies=[{"kind": "target", "name": "cpu-target", "metric": "cpu", "target": 60.0}],
        health={"unhealthy_threshold": 2, "boot_timeout_s": 30},
        drain={"timeout_s": 5, "grace_s": 0},
        launch={"backoff_initial_s": 1, "backoff_max_s": 2},
    )
    rig.provider.default_cpu = 45.0  # under the 60 % target: the policy holds, the story steers
    ctl = rig.ctl
    ctl.recover()
    rig.tick(3)
    lb.set_figures("web-1", rate_rps=20.0, response_time_s=0.1, latency_p95_s=0.25)
    rig.health.inflight["http://127.0.0.1:20001"] = 2
    rig.provider.fail_next["launch"] = temporary("no capacity (story)")
    ctl.set_desired(2, "story")
    rig.tick(8)  # the failed launch, its back-off, the retry, boot, ready
    rig.health.down.add("http://127.0.0.1:20001")
    rig.tick(6)  # two failed probes: failed, replaced
    rig.health.down.clear()
    rig.tick(4)
    ctl.set_desired(1, "story")
    rig.tick(6)  # drain, terminate
    for name in lb.members:  # the survivor serves traffic too, so every figure has a value
        lb.set_figures(name, rate_rps=15.0, response_time_s=0.08, latency_p95_s=0.2)
    rig.tick(1)
    ctl.shutdown(terminate=False)
    return ctl
