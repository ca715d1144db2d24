"""A real ``Controller`` driven over fakes (provider, balancer, health, clock) through a short
story: ready, traffic, a scale-up whose first launch fails, a health failure and its replacement,
a scale-in. Its metrics are then what a running controller sets, never values set by hand, for
tests that check the /metrics exposition (unit naming tests, promtool)."""

from __future__ import annotations

from pathlib import Path

from vmscale.clock import FakeClock
from vmscale.config import parse_config
from vmscale.controller import Controller, InlineExecutor
from vmscale.health import FakeHealthChecker
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.providers.fake import FakeProvider, temporary
from vmscale.store import Store


def run_story(state_dir: Path, group: str = "web") -> Controller:
    cfg = parse_config(
        {
            "group": {"name": group, "min": 1, "max": 3, "interval_s": 1},
            "policies": [{"kind": "target", "name": "cpu-target", "metric": "cpu", "target": 60.0}],
            "health": {"unhealthy_threshold": 2, "boot_timeout_s": 30},
            "drain": {"timeout_s": 5, "grace_s": 0},
            "launch": {"backoff_initial_s": 1, "backoff_max_s": 2},
        }
    )
    clock = FakeClock()
    provider = FakeProvider(clock)
    provider.default_cpu = 45.0  # under the 60 % target: the policy holds, the story steers
    lb = FakeLoadBalancer()
    health = FakeHealthChecker()
    ctl = Controller(
        cfg,
        provider,
        Store(state_dir / "state.db"),
        lb=lb,
        health=health,
        clock=clock,
        executor=InlineExecutor(),
    )
    ctl.recover()

    def ticks(n: int) -> None:
        for _ in range(n):
            ctl.tick()
            clock.advance(1)

    ticks(3)
    first = f"{group}-1"
    lb.set_figures(first, rate_rps=20.0, response_time_s=0.1, latency_p95_s=0.25)
    health.inflight["http://127.0.0.1:20001"] = 2
    provider.fail_next["launch"] = temporary("no capacity (story)")
    ctl.set_desired(2, "story")
    ticks(8)  # the failed launch, its back-off, the retry, boot, ready
    health.down.add("http://127.0.0.1:20001")
    ticks(6)  # two failed probes: failed, replaced
    health.down.clear()
    ticks(4)
    ctl.set_desired(1, "story")
    ticks(6)  # drain, terminate
    for name in lb.members:  # the survivor serves traffic too, so every figure has a value
        lb.set_figures(name, rate_rps=15.0, response_time_s=0.08, latency_p95_s=0.2)
    ticks(1)
    ctl.shutdown(terminate=False)
    return ctl
