"""What the controller redesign fixed, each a test that failed on the old controller:

* the policy metric gauge was never set (figures were looked up by a name the policies never used);
* launch, list, sample and terminate backed off by three different rules;
* back-off and drain timers ran on the wall clock, so a clock step changed how long they waited;
* a tick held the controller's lock through health probes, so API reads waited behind a slow tick;
* a resumed warm instance inherited its first launch's boot timer and failed its first missed probe.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from tests.support.controller_rig import Rig
from vmscale.errors import TemporaryProviderError
from vmscale.health import HealthResult


def _gauge(rig: Rig, name: str) -> float | None:
    value = rig.ctl.metrics.registry.get_sample_value(name, {"group": "web"})
    return value


def test_the_policy_metric_gauge_carries_what_the_policies_saw(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ctl.recover()
    rig.provider.default_cpu = 42.0
    rig.tick(4)
    # one gauge per metric, CPU as a 0..1 ratio (Prometheus naming; see vmscale.metrics)
    assert _gauge(rig, "vmscale_policy_cpu_ratio") == pytest.approx(0.42)
    assert b"vmscale_policy_cpu_ratio{" in generate_latest(rig.ctl.metrics.registry)


def _retry_delays(messages: list[str]) -> list[float]:
    out = []
    for attempt, m in enumerate(messages, start=2):
        found = re.search(r"retrying in ([0-9.]+)s \(attempt (\d+)\)", m)
        assert found, f"a failure report does not say when it is retried: {m!r}"
        assert int(found.group(2)) == attempt, m
        out.append(float(found.group(1)))
    return out


@pytest.mark.parametrize("op", ["launch", "list", "sample", "terminate"])
def test_every_failing_provider_call_backs_off_by_the_same_rule(tmp_path: Path, op: str) -> None:
    rig = Rig(tmp_path, launch={"backoff_initial_s": 1, "backoff_max_s": 60})
    rig.ctl.recover()
    if op == "terminate":
        rig.ctl.set_desired(2, "test")
        rig.tick(3)
        rig.provider.fail_always["terminate"] = TemporaryProviderError("terminate: disk full")
        rig.ctl.set_desired(1, "test")
    else:
        rig.tick(2)
        rig.provider.fail_always[op] = TemporaryProviderError(f"{op}: disk full")
        if op == "launch":
            rig.provider.vanish("web-1")  # a replacement must be launched, and cannot be
    rig.tick(40)
    delays = _retry_delays(rig.errors(f"provider.{op}"))
    assert delays[:4] == [1, 2, 4, 8], f"{op}: {delays}"


def test_a_wall_clock_step_does_not_stretch_a_drain(tmp_path: Path) -> None:
    rig = Rig(tmp_path, drain={"timeout_s": 10, "grace_s": 0})
    rig.ctl.recover()
    rig.ctl.set_desired(2, "test")
    rig.tick(3)
    rig.health.inflight["http://127.0.0.1:20002"] = 5  # never drains by itself
    rig.provider.cpu.update({"web-1": 10.0, "web-2": 5.0})
    rig.ctl.set_desired(1, "test")
    rig.tick(1)
    assert rig.states()["web-2"] == "draining"
    rig.clock.jump_wall(-3600)  # the operator sets the clock back an hour
    rig.tick(12)
    assert "web-2" not in rig.states(), "the drain timeout passed on the monotonic clock"


def test_a_wall_clock_step_does_not_stretch_a_back_off(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ctl.recover()
    rig.tick(2)
    rig.provider.fail_always["list"] = TemporaryProviderError("libvirtd is restarting")
    rig.tick(1)
    assert len(rig.errors("provider.list")) == 1
    rig.clock.jump_wall(-3600)  # the operator sets the clock back an hour
    rig.tick(4)
    assert len(rig.errors("provider.list")) == 3, "retried after 1 s and 2 s, not after an hour"


class BlockingHealth:
    """A health checker whose probes hang until released, like a probe of a wedged guest."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def check(self, endpoint: str) -> HealthResult:
        self.entered.set()
        self.release.wait(10)
        return HealthResult(True, inflight=0)

    def close(self) -> None:
        self.release.set()


def test_api_reads_do_not_wait_for_a_slow_tick(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.health = BlockingHealth()  # type: ignore[assignment]
    rig.ctl = rig.new_controller()
    rig.ctl.recover()
    rig.health.release.set()
    rig.tick(2)  # web-1 is ready
    rig.health.release.clear()
    ticking = threading.Thread(target=rig.ctl.tick)
    ticking.start()
    try:
        assert rig.health.entered.wait(5), "the tick did not reach its health probes"
        answers: list[object] = []
        reader = threading.Thread(
            target=lambda: answers.extend([rig.ctl.group(), rig.ctl.instances(), rig.ctl.endpoints()])
        )
        reader.start()
        reader.join(2)
        assert not reader.is_alive(), "an API read waited for the tick's health probes"
        assert answers and answers[0].ready == 1  # type: ignore[attr-defined]
    finally:
        rig.health.release.set()
        ticking.join(10)


def test_a_resumed_instance_gets_a_fresh_boot_timeout(tmp_path: Path) -> None:
    rig = Rig(tmp_path, warm_pool={"size": 1, "kind": "paused"}, health={"boot_timeout_s": 30})
    rig.ctl.recover()
    rig.tick(4)
    warm = next(n for n, s in rig.states().items() if s == "warm")
    rig.tick(60)  # parked for longer than the boot timeout
    rig.health.down.add(rig.instance(warm).facts.endpoint)  # restored, not answering yet
    rig.ctl.set_desired(2, "test")
    rig.tick(3)
    assert rig.states()[warm] == "booting", "a restore that needs a few seconds is not a failed boot"
    rig.health.down.clear()
    rig.tick(1)
    assert rig.states()[warm] == "ready"
