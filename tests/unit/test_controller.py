"""The reconcile loop against the in-memory provider, a fake health checker and a fake clock.

Every test drives ticks by hand: no threads, no sleeps. ``InlineExecutor`` finishes a provider
call when it is submitted, so its result is collected on the next tick, as with a real pool.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.controller_rig import Rig
from vmscale.errors import PermanentProviderError, TemporaryProviderError
from vmscale.model import InstanceState

S = InstanceState


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    r = Rig(tmp_path)
    r.ctl.recover()
    return r


def test_starts_at_the_initial_count_and_becomes_ready_after_the_health_check(rig: Rig) -> None:
    rig.tick()
    assert rig.states() == {"web-1": "pending"}
    rig.tick()
    assert rig.states() == {"web-1": "ready"}
    assert [(t[1], t[2]) for t in rig.store.transitions("web-1")] == [
        ("(none)", "pending"),
        ("pending", "booting"),
        ("booting", "ready"),
    ]
    assert rig.ctl.endpoints() == [{"name": "web-1", "url": "http://127.0.0.1:20001"}]


def test_an_instance_whose_health_check_does_not_pass_stays_out_of_rotation(rig: Rig) -> None:
    rig.health.down.add("http://127.0.0.1:20001")
    rig.tick(3)
    assert rig.states() == {"web-1": "booting"}
    assert rig.ctl.endpoints() == []


def test_the_original_rule_scales_up_after_three_hot_samples(rig: Rig) -> None:
    rig.tick(3)
    rig.set_cpu(90)
    rig.tick(2)
    assert rig.desired == 1, "two hot samples are not enough"
    rig.tick(1)
    assert rig.desired == 2
    rig.tick(2)
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}
    decision = rig.ctl.decisions()[-1]
    assert decision["direction"] == "up" and decision["actor"] == "autoscaler"


def test_scale_in_drains_the_least_busy_instance_then_terminates_it(rig: Rig) -> None:
    rig.ctl.set_desired(2, "test")
    rig.tick(3)
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}
    rig.provider.cpu.update({"web-1": 10.0, "web-2": 5.0})
    rig.health.inflight["http://127.0.0.1:20002"] = 2
    rig.tick(4)
    assert rig.states()["web-2"] == "draining", "web-2 is the least busy"
    assert [e["name"] for e in rig.ctl.endpoints()] == ["web-1"]
    rig.tick(2)
    assert rig.states()["web-2"] == "draining", "requests still in flight"
    rig.health.inflight["http://127.0.0.1:20002"] = 0
    rig.tick(3)
    assert rig.states() == {"web-1": "ready"}
    assert "web-2" not in rig.provider.instances
    assert [t[2] for t in rig.store.transitions("web-2")][-3:] == ["draining", "terminating", "gone"]


def test_drain_gives_up_at_the_timeout(rig: Rig) -> None:
    rig.ctl.set_desired(2, "test")
    rig.tick(3)
    rig.health.inflight["http://127.0.0.1:20002"] = 5
    rig.provider.cpu.update({"web-1": 10.0, "web-2": 5.0})
    rig.tick(4)
    assert rig.states()["web-2"] == "draining"
    rig.tick(12)
    assert "web-2" not in rig.states()
    reasons = [t[3] for t in rig.store.transitions("web-2")]
    assert any("drain timeout" in r for r in reasons)


def test_a_failing_launch_backs_off_exponentially_and_recovers(rig: Rig) -> None:
    rig.provider.fail_next["launch"] = TemporaryProviderError("libvirtd is down")
    rig.tick()  # launch attempted, fails inside the executor
    rig.tick()  # failure collected: failed, then cleaned up; next launch not before +1 s
    attempts = [c for c in rig.provider.calls if c[0] == "launch"]
    assert len(attempts) == 1
    rig.provider.fail_next["launch"] = TemporaryProviderError("still down")
    rig.tick(3)
    attempts = [c for c in rig.provider.calls if c[0] == "launch"]
    assert len(attempts) == 2, "one retry after the first back-off, not one per tick"
    rig.tick(6)
    assert rig.states() == {"web-1": "ready"}
    errors = [e.data["message"] for e in rig.ctl.events.recent(["error"])]
    assert any("libvirtd is down" in m and "retrying in" in m for m in errors)


def test_a_permanent_error_waits_the_longest_back_off(rig: Rig) -> None:
    rig.provider.fail_next["launch"] = PermanentProviderError("image missing: run `vmscale image build`")
    rig.tick(10)
    assert len([c for c in rig.provider.calls if c[0] == "launch"]) == 1


def test_an_instance_failing_its_health_checks_is_replaced(rig: Rig) -> None:
    rig.tick(2)
    rig.health.down.add("http://127.0.0.1:20001")
    rig.tick(2)
    assert rig.states() == {"web-1": "ready"}, "two misses are below the threshold of 3"
    rig.tick(1)
    assert "web-1" not in rig.states() or rig.states()["web-1"] in ("failed", "terminating")
    rig.health.down.clear()
    rig.tick(4)
    assert list(rig.states().values()) == ["ready"]
    assert rig.provider.launch_count == 2


def test_a_vanished_instance_is_replaced(rig: Rig) -> None:
    rig.tick(2)
    rig.provider.vanish("web-1")
    rig.tick(4)
    assert list(rig.states().values()) == ["ready"]
    assert rig.provider.launch_count == 2


def test_manual_desired_is_bounded_and_recorded_with_its_author(rig: Rig) -> None:
    with pytest.raises(ValueError, match=r"within \[min, max\] = \[1, 3\]"):
        rig.ctl.set_desired(9, "alice")
    rig.ctl.set_desired(3, "alice")
    rig.tick(2)
    assert len(rig.states()) == 3
    assert rig.ctl.decisions()[-1]["actor"] == "alice"


def test_restart_adopts_what_exists_and_launches_nothing_twice(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    r.ctl.recover()
    r.ctl.set_desired(2, "test")
    r.tick(3)
    pids_before = dict(r.provider.instances)
    # The controller dies: a new one starts from the same database and provider.
    r.ctl = r.new_controller()
    r.ctl.recover()
    r.tick(2)
    assert r.states() == {"web-1": "ready", "web-2": "ready"}
    assert r.provider.instances == pids_before
    assert r.provider.launch_count == 2
    assert r.desired == 2


def test_restart_finishes_a_launch_that_was_recorded_but_not_acknowledged(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    r.ctl.recover()
    r.tick(1)  # web-1 recorded pending and launched; the crash comes before the result is collected
    r.ctl = r.new_controller()
    r.ctl.recover()
    assert r.states() == {"web-1": "booting"}
    r.tick(2)
    assert r.states() == {"web-1": "ready"}
    assert r.provider.launch_count == 1


def test_orphans_at_the_provider_are_removed(rig: Rig) -> None:
    from vmscale.providers.base import InstanceSpec

    rig.tick(2)
    rig.provider.launch(InstanceSpec(group="web", name="web-7", index=7))
    rig.tick(3)
    assert "web-7" not in rig.provider.instances
    assert rig.states() == {"web-1": "ready"}


def test_warm_pool_is_filled_and_used_first_on_scale_up(tmp_path: Path) -> None:
    r = Rig(tmp_path, warm_pool={"size": 1, "kind": "paused"})
    r.ctl.recover()
    r.tick(4)
    assert sorted(r.states().values()) == ["ready", "warm"]
    warm_name = next(n for n, s in r.states().items() if s == "warm")
    r.ctl.set_desired(2, "test")
    r.tick(2)
    assert r.states()[warm_name] == "ready", "the scale-up took the parked instance"
    r.tick(3)
    assert sorted(r.states().values()) == ["ready", "ready", "warm"], "and the pool refilled"
    assert ("resume", warm_name) in r.provider.calls


def test_a_slow_resume_counts_as_capacity_and_the_pool_refills_after_it_serves(tmp_path: Path) -> None:
    """Restoring a saved VM takes about a second: ticks in the meantime must neither launch a cold
    instance for the same decision nor boot the refill beside it."""
    r = Rig(tmp_path, warm_pool={"size": 1, "kind": "paused"})
    r.ctl.recover()
    r.tick(4)
    warm_name = next(n for n, s in r.states().items() if s == "warm")
    r.executor.held = {"resume"}
    r.ctl.set_desired(2, "test")
    r.tick(3)
    assert len(r.states()) == 2, f"only the resume is under way, nothing else launched: {r.states()}"
    assert r.ctl.group().actual == 2, "the resuming instance counts toward the group"
    endpoint = r.ctl.fleet.get(warm_name).facts.endpoint
    r.health.down.add(endpoint)  # restored, not answering yet
    r.executor.release()
    r.tick(2)
    assert r.states()[warm_name] == "booting" and len(r.states()) == 2, "no refill before it serves"
    r.health.down.discard(endpoint)
    r.tick()
    assert r.states()[warm_name] == "ready"
    r.tick(3)
    assert sorted(r.states().values()) == ["ready", "ready", "warm"], "the pool refilled afterwards"


def test_scale_in_stops_an_instance_still_launching_not_a_serving_one(rig: Rig) -> None:
    rig.tick(3)
    rig.executor.held = {"launch"}
    rig.ctl.set_desired(2, "test")
    rig.tick()
    assert rig.states() == {"web-1": "ready", "web-2": "pending"}
    rig.ctl.set_desired(1, "test")
    rig.tick(2)
    assert rig.states()["web-1"] == "ready", "the serving instance is not drained for the launching one"
    rig.executor.release()
    rig.tick(3)
    assert rig.states() == {"web-1": "ready"}


def test_shutdown_terminates_everything(rig: Rig) -> None:
    rig.ctl.set_desired(3, "test")
    rig.tick(3)
    rig.ctl.shutdown(terminate=True)
    assert rig.provider.instances == {}
    assert rig.store.instances("web") == []


@pytest.mark.parametrize("op", ["launch", "terminate", "list", "sample", "pause", "resume"])
def test_an_outage_at_any_provider_step_is_reported_backed_off_and_survived(tmp_path: Path, op: str) -> None:
    r = Rig(tmp_path, warm_pool={"size": 1, "kind": "paused"})
    r.ctl.recover()
    r.tick(4)
    r.ctl.set_desired(3, "test")
    r.provider.fail_always[op] = TemporaryProviderError(f"{op}: disk full")
    r.tick(6)
    r.ctl.set_desired(1, "test")
    r.tick(6)
    calls_during = len(r.provider.calls)
    r.tick(10)
    assert len(r.provider.calls) - calls_during < 25, "retried with back-off, not every tick"
    errors = [e.data["message"] for e in r.ctl.events.recent(["error"], limit=1000)]
    assert any("disk full" in m for m in errors), f"the {op} outage was not reported"
    del r.provider.fail_always[op]
    r.ctl.set_desired(2, "test")
    r.tick(70)  # longer than the longest back-off
    live = sorted(s for s in r.states().values() if s != "warm")
    assert live == ["ready", "ready"], r.states()
    assert set(r.provider.instances) == set(r.states()), "the table and the provider agree again"


def test_a_drain_interrupted_by_a_restart_is_finished(tmp_path: Path) -> None:
    r = Rig(tmp_path, drain={"timeout_s": 10, "grace_s": 0.5})
    r.ctl.recover()
    r.ctl.set_desired(2, "test")
    r.tick(3)
    r.health.inflight["http://127.0.0.1:20002"] = 1
    r.provider.cpu.update({"web-1": 60.0, "web-2": 40.0})
    r.ctl.set_paused(True, "test")
    r.ctl.set_desired(1, "test")
    r.tick(1)
    assert r.states()["web-2"] == "draining"
    r.ctl = r.new_controller()  # the controller dies mid-drain
    r.ctl.recover()
    assert r.states()["web-2"] == "draining"
    r.health.inflight["http://127.0.0.1:20002"] = 0
    r.tick(3)
    assert r.states() == {"web-1": "ready"}
    assert "drained" in r.store.transitions("web-2")[-2][3]


def test_a_sampling_outage_is_retried_with_growing_gaps(rig: Rig) -> None:
    rig.tick(2)
    rig.provider.fail_always["sample"] = TemporaryProviderError("libvirtd is not running")
    rig.tick(30)
    sample_errors = [
        e for e in rig.ctl.events.recent(["error"], limit=1000) if e.data["where"] == "provider.sample"
    ]
    assert 2 <= len(sample_errors) <= 5, "exponential back-off: a handful of attempts in 30 s, not 30"
    del rig.provider.fail_always["sample"]
    rig.tick(70)
    assert rig.ctl.fleet.get("web-1").latest_cpu() == 50.0, "sampling resumes once the provider is back"
