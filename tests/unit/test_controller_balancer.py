"""The controller with a balancer in front (the in-memory fake): membership follows the instance
states, a drain waits for the balancer's sessions, and a restarted or failing balancer is repaired by
the next tick. The same stories run against real HAProxy in tests/integration."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.controller_rig import Rig
from vmscale.errors import LoadBalancerError
from vmscale.lb.fake import FakeLoadBalancer


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    r = Rig(tmp_path, lb=FakeLoadBalancer(), drain={"timeout_s": 30, "grace_s": 0})
    r.ctl.recover()
    r.ctl.set_desired(2, "test")
    r.tick(3)
    assert r.states() == {"web-1": "ready", "web-2": "ready"}
    return r


def lb(rig: Rig) -> FakeLoadBalancer:
    assert isinstance(rig.lb, FakeLoadBalancer)
    return rig.lb


def test_ready_instances_are_in_rotation(rig: Rig) -> None:
    assert lb(rig).in_rotation() == {"web-1", "web-2"}
    assert rig.ctl.group().frontend_url == "http://127.0.0.1:8080"


def test_a_drain_waits_for_the_balancers_sessions_not_the_workloads(rig: Rig) -> None:
    rig.provider.cpu.update({"web-1": 40.0, "web-2": 10.0})
    rig.tick(1)
    lb(rig).set_sessions("web-2", 3)
    rig.health.inflight["http://127.0.0.1:20002"] = 0  # the workload's own count would say "done"
    rig.ctl.set_desired(1, "test")
    rig.tick(3)
    assert rig.states()["web-2"] == "draining"
    assert ("drain", "web-2") in lb(rig).calls
    assert lb(rig).in_rotation() == {"web-1"}, "a draining server takes no new requests"
    lb(rig).set_sessions("web-2", 0)
    rig.tick(2)
    assert rig.states() == {"web-1": "ready"}
    assert "web-2" not in lb(rig).members


def test_a_restarted_balancer_is_repaired_by_the_next_tick(rig: Rig) -> None:
    lb(rig).restart()
    assert lb(rig).in_rotation() == set()
    rig.tick(1)
    assert lb(rig).in_rotation() == {"web-1", "web-2"}


def test_balancer_errors_are_reported_and_survived(rig: Rig) -> None:
    lb(rig).fail_next.extend(LoadBalancerError(f"runtime API: timeout {i}") for i in range(6))
    lb(rig).restart()
    rig.tick(3)
    assert any("runtime API: timeout" in m for m in rig.errors()), rig.errors()
    rig.tick(1)
    assert lb(rig).in_rotation() == {"web-1", "web-2"}, "repaired once the balancer answers again"
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}


def test_an_instance_failing_health_leaves_rotation_at_once(rig: Rig) -> None:
    rig.health.down.add("http://127.0.0.1:20001")
    rig.tick(3)
    assert "web-1" not in lb(rig).in_rotation()
    assert ("remove", "web-1") in lb(rig).calls


def test_a_p95_policy_gets_a_p95_never_the_balancers_mean(rig: Rig) -> None:
    from vmscale.lb.base import ServerStats

    lb(rig).set_figures("web-1", response_time_s=0.4)  # HAProxy's rtime: a mean, not a percentile
    rig.tick(1)
    assert rig.instance("web-1").samples[-1].latency_p95 is None
    assert rig.ctl.telemetry.view.traffic.latency_p95_s is None
    lb(rig).set_figures("web-1", latency_p95_s=0.9)
    lb(rig).set_figures("web-2", latency_p95_s=0.1)
    lb(rig).backend = ServerStats("web", "ready", latency_p95_s=0.7)  # over every request of the group
    rig.tick(1)
    assert rig.instance("web-1").samples[-1].latency_p95 == 0.9
    assert rig.ctl.telemetry.view.traffic.latency_p95_s == 0.7, "the group's own p95, not the worst server's"
