"""Vertical-first in the controller, tick by tick against the fake provider (which plays the
Resizer role): the policies count vCPUs, ready instances grow before instances are added, a resize
counts as capacity from the decision until the workload serves with it, and the way down removes
exactly the instances the decision named. The same story runs on TCG guests in
tests/e2e/test_libvirt_vertical.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.controller_rig import Rig
from vmscale.cli import fmt
from vmscale.controller.golden import RECHECK_S
from vmscale.controller.resizes import GROWTH_HOLD_S
from vmscale.errors import NoHeadroomError, PermanentProviderError
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.model import InstanceState
from vmscale.providers.base import GoldenSnapshot

S = InstanceState
URL1, URL2 = "http://127.0.0.1:20001", "http://127.0.0.1:20002"


def vertical(
    tmp_path: Path, *, max_vcpus: int = 2, lb: FakeLoadBalancer | None = None, initial: int = 1
) -> Rig:
    r = Rig(
        tmp_path,
        lb=lb,
        group={"name": "web", "min": 1, "max": 3, "interval_s": 1, "initial": initial},
        scaling={"mode": "vertical-first"},
        template={"vcpus": 1, "max_vcpus": max_vcpus},
        policies=[{"kind": "target", "target": 60, "down_stabilization_s": 0}],
    )
    r.ctl.recover()
    r.tick(2)
    assert r.states() == {f"web-{i}": "ready" for i in range(1, initial + 1)}
    return r


def resize_events(rig: Rig, stage: str | None = None) -> list[dict[str, Any]]:
    return [
        e.data
        for e in rig.ctl.events.recent(["resize"], limit=1000)
        if stage is None or e.data["stage"] == stage
    ]


def test_a_hot_instance_is_grown_before_anything_is_launched(tmp_path: Path) -> None:
    rig = vertical(tmp_path)
    rig.set_cpu(90)  # 0.9 of one vCPU at a 60 % target: ceil(1 * 90/60) = 2 vCPUs
    rig.tick()
    assert ("resize", "web-1:2") in rig.provider.calls
    assert not [c for c in rig.provider.calls if c == ("launch", "web-2")], "grown, not launched"
    assert rig.states() == {"web-1": "ready"} and rig.desired == 1
    assert rig.instance("web-1").facts.vcpus == 2
    assert [i.vcpus for i in rig.ctl.instances()] == [2], "the API shows the new size"
    decision = rig.ctl.decisions()[-1]
    assert decision["placement"] == "resize-up" and decision["direction"] == "up"
    assert decision["capacity"]["resizes"] == [["web-1", 1, 2]]
    assert decision["reason"].startswith("vertical-first: 1 -> 2 vCPUs wanted: web-1 1->2 vCPUs")
    started = resize_events(rig, "started")
    assert started[-1]["from"] == 1 and started[-1]["to"] == 2 and "vertical-first" in started[-1]["reason"]
    assert rig.store.instances("web")[0].vcpus == 2, "the store's row follows"


def test_a_resize_counts_as_capacity_until_the_workload_serves_with_it(tmp_path: Path) -> None:
    lb = FakeLoadBalancer()
    rig = vertical(tmp_path, lb=lb)
    rig.health.cpus[URL1] = 1  # the workload has not taken the new vCPU yet
    rig.set_cpu(90)
    rig.tick()
    # The same demand (0.9 of a CPU) measured against the 2 vCPUs it has now: 45 %. Nothing more.
    rig.set_cpu(45)
    rig.tick(5)
    assert rig.instance("web-1").timers.resize is not None, "in transit"
    assert rig.ctl.reconciler.transitional(), "the loop polls fast until it arrives"
    assert lb.weights() == {"web-1": 1}, "the balancer weighs what serves now"
    assert rig.states() == {"web-1": "ready"} and rig.desired == 1
    assert [c for c in rig.provider.calls if c[0] in ("launch", "resize")] == [
        ("launch", "web-1"),
        ("resize", "web-1:2"),
    ]
    assert resize_events(rig, "serving") == []
    rig.health.cpus[URL1] = 2
    rig.tick()
    serving = resize_events(rig, "serving")
    assert len(serving) == 1 and serving[0]["to"] == 2 and serving[0]["seconds"] is not None
    assert rig.instance("web-1").timers.resize is None and not rig.ctl.reconciler.transitional()
    assert lb.weights() == {"web-1": 2}, "now it gets twice the share"


def test_a_workload_that_does_not_report_its_cpus_is_taken_at_the_providers_word(tmp_path: Path) -> None:
    rig = vertical(tmp_path)  # the fake health checker reports no cpus unless told
    rig.set_cpu(90)
    rig.tick(2)
    assert len(resize_events(rig, "serving")) == 1
    assert rig.instance("web-1").timers.resize is None


def test_beyond_max_vcpus_instances_are_added_at_the_templates_size(tmp_path: Path) -> None:
    rig = vertical(tmp_path, max_vcpus=2)
    rig.set_cpu(90)
    # Grown to 2 vCPUs (its 90 % read as 45 % of two until a new sample), then still hot at two:
    # ceil(2 * 90/60) = 3 vCPUs, one more than fits.
    rig.tick(3)
    decision = rig.ctl.decisions()[-1]
    assert decision["placement"] == "add/at-max-vcpus" and decision["desired"] == 2
    rig.set_cpu(55)  # inside the dead band from here on
    rig.tick(3)
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}
    assert (rig.instance("web-1").facts.vcpus, rig.instance("web-2").facts.vcpus) == (2, 1)


def test_a_refused_resize_is_undone_reported_and_backed_off(tmp_path: Path) -> None:
    rig = vertical(tmp_path)
    rig.provider.fail_always["resize"] = PermanentProviderError("defined without room to grow")
    rig.set_cpu(90)
    rig.tick(2)
    assert rig.instance("web-1").facts.vcpus == 1, "back to what it has"
    assert resize_events(rig, "failed")[-1]["reason"].endswith("defined without room to grow")
    assert any("defined without room to grow" in m and "retrying in 60s" in m for m in rig.errors())
    rig.tick(10)
    assert len([c for c in rig.provider.calls if c[0] == "resize"]) == 1, "a permanent error waits longest"


def test_a_host_without_headroom_caps_the_instance_and_an_instance_is_added_instead(tmp_path: Path) -> None:
    """NoHeadroomError: not the group's back-off (another host may have room) but a cap on this
    instance for GROWTH_HOLD_S, so the next decision adds an instance; after the hold it may grow."""
    rig = vertical(tmp_path, max_vcpus=2)
    rig.provider.fail_next["resize"] = NoHeadroomError("not growing web-1 from 1 to 2 vCPUs: host CPU")
    rig.set_cpu(90)
    rig.tick(2)  # the resize is asked for, then its refusal comes back
    assert rig.instance("web-1").facts.vcpus == 1, "back to what it has"
    assert rig.instance("web-1").timers.growth_cap is not None
    assert any("host CPU" in m and "retrying" not in m for m in rig.errors()), "reported, no back-off"
    decision = rig.ctl.decisions()[-1]
    assert (decision["placement"], decision["desired"]) == ("add/host-full", 2), decision["reason"]
    rig.set_cpu(40)  # the second instance takes half of it: no more demand
    rig.tick(3)
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}
    assert [c for c in rig.provider.calls if c[0] == "resize"] == [("resize", "web-1:2")], "not retried yet"
    rig.clock.advance(GROWTH_HOLD_S)
    rig.tick()
    assert rig.instance("web-1").timers.growth_cap is None, "the hold is over: it may grow again"


def test_no_cpu_sample_is_taken_while_the_resize_call_runs(tmp_path: Path) -> None:
    rig = vertical(tmp_path)
    rig.executor.held.add("resize")
    rig.set_cpu(90)
    rig.tick(2)
    assert rig.instance("web-1").samples[-1].cpu is None, "neither the old size's percent nor the new's"
    rig.executor.release()
    rig.tick(2)  # the first sample after a resize is a baseline (a percentage of the new size next)
    assert [s.cpu for s in rig.instance("web-1").samples][-2:] == [None, 90]


def test_a_size_changed_at_the_provider_is_taken_from_its_listing(tmp_path: Path) -> None:
    rig = vertical(tmp_path)
    rig.provider.resize("web-1", 3)  # virsh setvcpus, or a resize whose answer was lost
    rig.tick()
    assert resize_events(rig, "observed")[-1]["to"] == 3
    # Its 50 % of one vCPU is 16.7 % of three: the same tick's decision gives two back.
    assert rig.ctl.decisions()[-1]["reason"].startswith("vertical-first: 3 -> 1 vCPUs wanted: web-1 3->1")


def two_instances(tmp_path: Path, *, can_shrink: bool) -> Rig:
    """web-1 at 3 vCPUs, web-2 at 1, both idle enough that one vCPU is all the policies want."""
    rig = vertical(tmp_path, max_vcpus=4, initial=2)
    rig.provider.can_shrink = can_shrink
    rig.ctl = rig.new_controller()  # the sizing reads can_shrink at start
    rig.ctl.recover()
    rig.provider.resize("web-1", 3)
    rig.set_cpu(10)
    rig.tick(2)  # the listing says 3 (then a baseline sample); the policies: 0.4 of a CPU -> 1 vCPU
    return rig


def test_where_vcpus_cannot_be_removed_exactly_the_named_instance_goes(tmp_path: Path) -> None:
    rig = two_instances(tmp_path, can_shrink=False)
    decision = rig.ctl.decisions()[-1]
    assert decision["placement"] == "remove/cannot-shrink,kept"
    assert decision["capacity"]["remove"] == ["web-2"] and decision["desired"] == 1
    rig.tick(3)
    assert rig.states() == {"web-1": "ready"}
    assert rig.instance("web-1").facts.vcpus == 3
    assert not [c for c in rig.provider.calls if c == ("resize", "web-1:1")]


def test_where_vcpus_can_be_removed_the_big_one_shrinks_and_the_rest_goes(tmp_path: Path) -> None:
    rig = two_instances(tmp_path, can_shrink=True)
    decision = rig.ctl.decisions()[-1]
    assert decision["placement"] == "resize-down+remove/at-base-vcpus"
    rig.tick(3)
    assert rig.states() == {"web-1": "ready"}
    assert rig.instance("web-1").facts.vcpus == 1
    transitions = [t[2] for t in rig.store.transitions("web-2")]
    assert transitions[-3:] == ["draining", "terminating", "gone"]


@pytest.mark.parametrize(("mode", "kept"), [("horizontal", 2), ("vertical-first", 0)])
def test_policy_memory_in_the_other_unit_is_not_restored(tmp_path: Path, mode: str, kept: int) -> None:
    """The policies' memory is in instances or in vCPUs: a switch of mode starts it afresh."""
    first = Rig(tmp_path, policies=[{"kind": "threshold", "name": "hot", "upper": 75, "samples_up": 3}])
    first.ctl.recover()
    first.tick(2)
    first.set_cpu(90)
    first.tick(2)
    assert first.ctl.autoscaler.state.policy_state.get("hot").up_streak == 2
    again = Rig(
        tmp_path,
        policies=[{"kind": "threshold", "name": "hot", "upper": 75, "samples_up": 3}],
        scaling={"mode": mode},
        template={"vcpus": 1, "max_vcpus": 2},
    )
    again.ctl.recover()
    assert again.ctl.autoscaler.state.policy_state.get("hot").up_streak == kept


def test_the_golden_is_prepared_at_start_and_a_failure_is_only_reported(tmp_path: Path) -> None:
    from vmscale.errors import TemporaryProviderError

    rig = Rig(tmp_path)
    rig.provider.fail_next["prepare"] = TemporaryProviderError("golden did not come up")
    rig.ctl.recover()
    assert ("prepare", "web") in rig.provider.calls
    rig.tick(2)
    assert rig.states() == {"web-1": "ready"}, "the group serves meanwhile"
    assert any("golden did not come up" in m for m in rig.errors("provider.prepare"))
    golden = rig.ctl.group().golden
    assert golden is not None and golden["state"] == "failed", "the status says it failed, and why"
    assert "golden did not come up" in golden["error"]
    assert "tried again in 60 s; a clone launch meanwhile makes it" in fmt.golden_line(golden)


def test_a_golden_that_cannot_be_made_is_tried_again_later_and_later(tmp_path: Path) -> None:
    """A broken image must not cost a golden's boot every minute: 60 s, then 120 s, ..."""
    from vmscale.errors import TemporaryProviderError

    rig = Rig(tmp_path)
    rig.provider.fail_always["prepare"] = TemporaryProviderError("golden did not come up")
    rig.ctl.recover()

    def asked() -> int:
        return sum(1 for c in rig.provider.calls if c[0] == "prepare")

    rig.tick(int(RECHECK_S) + 1)
    assert asked() == 2, "tried again after 60 s"
    rig.tick(int(RECHECK_S) + 1)
    assert asked() == 2, "not again 60 s later: the second wait is 120 s"
    rig.tick(int(RECHECK_S))
    assert asked() == 3
    rig.tick()  # its answer
    golden = rig.ctl.group().golden
    assert golden is not None and "tried again in 240 s" in golden["next"]
    assert [e.data["stage"] for e in rig.ctl.events.recent(["golden"])] == ["making", "failed"], "no news"
    del rig.provider.fail_always["prepare"]
    rig.provider.golden = GoldenSnapshot("3f2a9c", 1_700_000_000.0, 135.4, 8.5, 2.1, made_now=True)
    rig.tick(int(4 * RECHECK_S) + 1)
    golden = rig.ctl.group().golden
    assert golden is not None and (golden["state"], golden["key"]) == ("ready", "3f2a9c")


def test_the_golden_shows_in_the_status_and_the_log_while_made_and_once_ready(tmp_path: Path) -> None:
    """An operator can tell whether the first scale-up restores a clone or waits for the golden."""
    rig = Rig(tmp_path)
    rig.executor.held.add("prepare")  # making one takes 20-40 s under TCG: later ticks see it going on
    rig.provider.golden = GoldenSnapshot("3f2a9c", 1_700_000_000.0, 135.4, 8.5, 2.1, made_now=True)
    rig.ctl.recover()
    rig.tick(2)
    assert rig.ctl.group().golden == {"state": "making", "since": pytest.approx(rig.clock.now(), abs=3)}
    assert rig.states() == {"web-1": "ready"}, "the group serves while its golden is made"
    rig.executor.release()
    rig.tick()
    golden = rig.ctl.group().golden
    assert golden is not None
    assert (golden["state"], golden["key"], golden["size_mb"], golden["made_now"]) == (
        "ready",
        "3f2a9c",
        135.4,
        True,
    )
    assert [e.data["stage"] for e in rig.ctl.events.recent(["golden"])] == ["making", "ready"]
    assert fmt.golden_line(golden).startswith("golden snapshot 3f2a9c ready: 135 MiB, made at ")


def test_a_new_golden_is_made_ahead_when_the_image_changes_under_a_running_group(tmp_path: Path) -> None:
    """The golden's key changes with the image: the periodic check has the new one made on a worker
    (and shown), instead of the next scale-up waiting 20-40 s for it; an unchanged one is quiet."""
    rig = Rig(tmp_path)
    rig.provider.golden = GoldenSnapshot("old111", 1_700_000_000.0, 130.0, 8.0, 2.0, made_now=True)
    rig.ctl.recover()
    rig.tick(int(RECHECK_S) + 2)
    asked = [c for c in rig.provider.calls if c[0] == "prepare"]
    assert len(asked) == 2, "asked again once per RECHECK_S, not on every tick"
    assert [e.data["stage"] for e in rig.ctl.events.recent(["golden"])] == ["making", "ready"], (
        "same one: quiet"
    )
    rig.provider.golden = GoldenSnapshot("new222", 1_700_000_100.0, 131.0, 8.2, 2.1, made_now=True)
    rig.tick(int(RECHECK_S) + 2)  # RECHECK_S after the last answer, and the new answer
    golden = rig.ctl.group().golden
    assert golden is not None and (golden["state"], golden["key"]) == ("ready", "new222")
    ready = [e.data for e in rig.ctl.events.recent(["golden"]) if e.data["stage"] == "ready"]
    assert [e["key"] for e in ready] == ["old111", "new222"]
    # Its files removed by hand and the golden made again under the same key: that is news too.
    rig.provider.golden = GoldenSnapshot("new222", 1_700_000_900.0, 131.0, 8.4, 2.0, made_now=True)
    rig.tick(int(RECHECK_S) + 2)
    assert rig.ctl.group().golden["made_at"] == 1_700_000_900.0  # type: ignore[index]
    assert len([e for e in rig.ctl.events.recent(["golden"]) if e.data["stage"] == "ready"]) == 3


def test_a_provider_that_boots_every_instance_is_not_asked_for_a_golden(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.provider.clones = False  # launch = "boot": nothing to make ahead
    rig.ctl.recover()
    rig.tick(2)
    assert ("prepare", "web") not in rig.provider.calls
    assert rig.ctl.group().golden is None and rig.ctl.events.recent(["golden"]) == []
