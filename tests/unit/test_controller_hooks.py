"""Lifecycle hooks and external metrics as the controller uses them (the hooks and sources
themselves are tested on their own, for real, in tests/integration):

* a launch hook runs between "healthy" and "in rotation": continue lets the instance in, abandon
  replaces it (and backs off launches, as a failed launch would);
* a terminate hook runs after an instance that served leaves rotation, before it is destroyed, and
  whatever it answers the instance is destroyed;
* an external metric reaches the policies; when its source has no data, they hold.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from tests.support.controller_rig import Rig
from vmscale.hooks import HookSubject, PhaseResult
from vmscale.metrics_sources import ExternalMetrics


class FakeHooks:
    """Hooks whose answers the test gives: each submitted phase waits until ``answer``."""

    def __init__(self, *phases: str) -> None:
        self.phases = set(phases)
        self.calls: list[tuple[str, str]] = []
        self.pending: dict[tuple[str, str], Future[PhaseResult]] = {}

    def has(self, phase: str) -> bool:
        return phase in self.phases

    def submit(self, phase: str, subject: HookSubject) -> Future[PhaseResult]:
        self.calls.append((phase, subject.instance))
        fut: Future[PhaseResult] = Future()
        self.pending[(phase, subject.instance)] = fut
        return fut

    def answer(self, phase: str, name: str, result: str) -> None:
        self.pending.pop((phase, name)).set_result(PhaseResult(phase, name, result))  # type: ignore[arg-type]


class FakeIntegrations:
    def __init__(self, hooks: FakeHooks | None = None, metrics: ExternalMetrics | None = None) -> None:
        self.hooks = hooks or FakeHooks()
        self.metrics = metrics or ExternalMetrics()
        self.asked: list[list[str]] = []

    def external_metrics(self, names: list[str]) -> ExternalMetrics:
        self.asked.append(list(names))
        return self.metrics


def rig_with(tmp: Path, integrations: FakeIntegrations, **overrides: Any) -> Rig:
    rig = Rig(tmp, integrations=integrations, **overrides)
    rig.ctl.recover()
    return rig


def test_a_launch_hook_holds_the_instance_out_of_rotation_until_it_continues(tmp_path: Path) -> None:
    hooks = FakeHooks("launch")
    rig = rig_with(tmp_path, FakeIntegrations(hooks))
    rig.tick(4)
    assert rig.states() == {"web-1": "booting"}, "healthy, but the launch hook has not answered"
    assert rig.ctl.endpoints() == []
    hooks.answer("launch", "web-1", "continue")
    rig.tick(1)
    assert rig.states() == {"web-1": "ready"}
    assert [e["name"] for e in rig.ctl.endpoints()] == ["web-1"]
    assert hooks.calls == [("launch", "web-1")], "the hook runs once per instance"


def test_a_launch_hook_that_abandons_replaces_the_instance(tmp_path: Path) -> None:
    hooks = FakeHooks("launch")
    rig = rig_with(tmp_path, FakeIntegrations(hooks))
    rig.tick(2)
    hooks.answer("launch", "web-1", "abandon")
    rig.tick(1)
    assert "web-1" not in rig.states() or rig.states()["web-1"] in ("failed", "terminating")
    assert rig.ctl.endpoints() == [], "an abandoned instance never enters rotation"
    rig.tick(4)
    (replacement,) = rig.states()
    assert rig.provider.launch_count == 2, "a new instance replaced the abandoned one"
    assert hooks.calls.count(("launch", replacement)) == (2 if replacement == "web-1" else 1)
    hooks.answer("launch", replacement, "continue")
    rig.tick(1)
    assert list(rig.states().values()) == ["ready"]


def test_a_terminate_hook_runs_after_the_drain_and_before_the_instance_is_destroyed(tmp_path: Path) -> None:
    hooks = FakeHooks("terminate")
    rig = rig_with(tmp_path, FakeIntegrations(hooks), drain={"timeout_s": 10, "grace_s": 0})
    rig.ctl.set_desired(2, "test")
    rig.tick(3)
    rig.provider.cpu.update({"web-1": 60.0, "web-2": 10.0})
    rig.tick(1)
    rig.ctl.set_desired(1, "test")
    rig.tick(3)
    assert ("terminate", "web-2") in hooks.calls
    assert "web-2" in rig.provider.instances, "not destroyed before its hook answers"
    assert [e["name"] for e in rig.ctl.endpoints()] == ["web-1"]
    hooks.answer("terminate", "web-2", "abandon")  # a terminate hook only delays
    rig.tick(2)
    assert rig.states() == {"web-1": "ready"}
    assert "web-2" not in rig.provider.instances
    assert "terminate hooks" in rig.store.transitions("web-2")[-2][3]


def test_an_instance_that_never_served_is_stopped_without_terminate_hooks(tmp_path: Path) -> None:
    hooks = FakeHooks("terminate")
    rig = rig_with(tmp_path, FakeIntegrations(hooks))
    rig.health.down.add("http://127.0.0.1:20001")
    rig.tick(40)  # never ready: failed at the boot timeout, and replaced
    assert hooks.calls == []


def test_an_external_metric_drives_the_policy_and_missing_data_holds(tmp_path: Path) -> None:
    ext = FakeIntegrations(metrics=ExternalMetrics(group={"queue": 300.0}))
    rig = rig_with(
        tmp_path,
        ext,
        policies=[{"kind": "target", "metric": "queue", "target": 100.0, "down_stabilization_s": 0}],
        metrics={"prometheus": [{"name": "queue", "url": "http://127.0.0.1:9", "query": "sum(q)"}]},
    )
    rig.tick(3)
    assert rig.desired == 3, "a group value of 3x its target asks for 3 instances"
    assert (ext.asked and ext.asked[-1] == ["web-1"]) or ext.asked[-1]
    ext.metrics = ExternalMetrics(notes={"queue": "Prometheus unreachable: connection refused"})
    rig.tick(5)
    assert rig.desired == 3, "no data: the policy holds, it never scales in"
    assert sorted(rig.states().values()) == ["ready", "ready", "ready"]
