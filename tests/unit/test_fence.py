"""Fencing of every world-changing action (``controller/fence.py``): a controller that no longer
leads makes no provider call, no balancer call and no store write, whether it learns so from its
own clock (the renew deadline passed), from the store (another controller took the lease) or from
the provider (an instance of a newer epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.controller_rig import Rig
from vmscale.controller import Controller
from vmscale.controller.fence import LeaseFence, Unfenced
from vmscale.controller.operations import OpKind
from vmscale.errors import NotLeaderError
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.providers.base import InstanceSpec
from vmscale.store import FencedError, GroupRow, InstanceRow, Lease


class LeaderRig(Rig):
    """The rig as a `vmscale up` leader runs it: its store writes through ``store.fenced(lease)`` and
    its fence reads ``leading`` (the elector's ``is_leader``)."""

    def __init__(self, tmp: Path, **kw: Any) -> None:
        self.leading = True
        self.lease: Lease | None = None
        super().__init__(tmp, **kw)

    def new_controller(self) -> Controller:
        self.lease = self.store.leases("web").try_acquire("ctl-a", 15.0)
        assert self.lease is not None
        view = self.store.fenced(self.lease)
        return super().new_controller(
            store=view, fence=LeaseFence(lambda: self.leading, view.check_fence, self.lease.epoch)
        )

    @property
    def epoch(self) -> int:
        assert self.lease is not None
        return self.lease.epoch

    def another_takes_over(self) -> None:
        """A second controller takes the lease (this one's clock has not noticed: the worst case)."""
        assert self.store.leases("web").try_acquire("ctl-b", 15.0, replacing="ctl-a") is not None

    def settle(self) -> None:
        self.ctl.recover()
        self.ctl.set_paused(True, "test")
        self.tick(3)
        assert self.states() == {"web-1": "ready"}

    def recorded(self) -> int:
        """Transition rows in the store (every record the controller ever wrote)."""
        return sum(
            len(self.store.transitions(r.name)) for r in self.store.instances("web", include_gone=True)
        )


def test_instances_carry_the_epoch_of_the_leader_that_launched_them(tmp_path: Path) -> None:
    rig = LeaderRig(tmp_path)
    rig.settle()
    assert rig.provider.instances["web-1"].details["epoch"] == str(rig.epoch)
    assert rig.store.instances("web")[0].details["epoch"] == str(rig.epoch)


def test_past_its_renew_deadline_a_leader_makes_no_call_and_no_write(tmp_path: Path) -> None:
    lb = FakeLoadBalancer()
    rig = LeaderRig(tmp_path, lb=lb)
    rig.settle()
    rig.provider.vanish("web-1")  # a tick would now record a failure and launch a replacement
    calls, lb_calls, records = list(rig.provider.calls), list(lb.calls), rig.recorded()
    rig.leading = False
    with pytest.raises(NotLeaderError):
        rig.ctl.tick()
    with pytest.raises(NotLeaderError):
        rig.ctl.set_desired(2, "someone")
    assert rig.provider.calls == calls and lb.calls == lb_calls and rig.recorded() == records


def test_a_record_refused_by_the_store_stops_the_call_it_precedes(tmp_path: Path) -> None:
    rig = LeaderRig(tmp_path)
    rig.settle()
    rig.another_takes_over()
    rig.ctl.autoscaler.restore(GroupRow("web", 2, True, {}))  # want a launch, without a write
    with pytest.raises(FencedError):
        rig.ctl.tick()
    assert ("launch", "web-2") not in rig.provider.calls, "launched although its record was refused"
    assert [r.name for r in rig.store.instances("web")] == ["web-1"]


def test_the_balancer_sync_asks_the_store_first(tmp_path: Path) -> None:
    lb = FakeLoadBalancer()
    rig = LeaderRig(tmp_path, lb=lb)
    rig.settle()
    assert lb.calls[-1] == ("sync", "web-1")
    syncs = lb.calls.count(("sync", "web-1"))
    rig.another_takes_over()
    with pytest.raises(FencedError):
        rig.ctl.tick()  # nothing changes in this tick: no record precedes the sync, the store is asked
    assert lb.calls.count(("sync", "web-1")) == syncs


def test_a_call_queued_before_the_loss_never_reaches_the_provider(tmp_path: Path) -> None:
    rig = LeaderRig(tmp_path)
    rig.settle()
    rig.executor.held.add(OpKind.LAUNCH)
    rig.ctl.set_desired(2, "test")
    rig.tick()  # web-2 recorded as pending, its launch waits in the worker pool
    assert rig.states()["web-2"] == "pending"
    rig.leading = False
    rig.executor.release()  # the worker runs the call now: it checks the fence first
    assert ("launch", "web-2") not in rig.provider.calls
    rig.leading = True
    with pytest.raises(NotLeaderError):  # the refusal ends the tick; it is not a failed launch
        rig.ctl.reconciler.collect(rig.clock.now(), rig.clock.monotonic())


def test_an_instance_of_a_newer_epoch_makes_the_leader_step_down_untouched(tmp_path: Path) -> None:
    rig = LeaderRig(tmp_path)
    rig.settle()
    rig.provider.launch(InstanceSpec(group="web", name="web-2", index=2, epoch=rig.epoch + 1))
    with pytest.raises(NotLeaderError, match="web-2 was launched at epoch"):
        rig.ctl.tick()
    assert ("terminate", "web-2") not in rig.provider.calls, "a newer leader's instance taken for an orphan"
    assert "web-2" not in {r.name for r in rig.store.instances("web")}


def test_instances_of_older_epochs_are_adopted_by_the_next_leader(tmp_path: Path) -> None:
    rig = LeaderRig(tmp_path)
    rig.settle()  # web-1 launched at epoch 1
    assert rig.lease is not None and rig.store.leases("web").release(rig.lease)
    rig.ctl = rig.new_controller()  # the next term: epoch 2, state rebuilt from store and provider
    assert rig.epoch == 2
    rig.ctl.recover()
    rig.tick(3)
    assert rig.states() == {"web-1": "ready"}
    assert rig.provider.launch_count == 1, "an older term's instance was launched again"
    assert rig.provider.instances["web-1"].details["epoch"] == "1"


class RecordingFence(Unfenced):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def check(self, action: str) -> None:
        self.seen.append(("check", action))

    def confirm(self, action: str) -> None:
        self.seen.append(("confirm", action))


def recording(rig: Rig) -> RecordingFence:
    fence = RecordingFence()
    rig.ctl = Controller(
        rig.cfg,
        rig.provider,
        rig.store,
        health=rig.health,
        clock=rig.clock,
        executor=rig.executor,
        fence=fence,
    )
    return fence


def test_every_action_is_checked_and_confirmed_where_no_record_precedes_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, warm_pool={"size": 1, "kind": "paused"})
    fence = recording(rig)
    rig.ctl.recover()
    rig.tick(4)  # the group's instance and a pool instance launch and boot; the pool one is parked
    assert rig.states() == {"web-1": "ready", "web-2": "warm"}
    # Each launch is checked before it is recorded, before it is submitted, and in the worker right
    # before the call.
    assert fence.seen.count(("check", "launch")) == 6
    assert ("confirm", "pause") in fence.seen, "a park has no record in front of it: ask the store"
    assert fence.seen.count(("confirm", "lb.sync")) == 4, "every tick's balancer sync asks the store"


def test_a_repeated_terminate_asks_the_store(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    made = rig.provider.launch(InstanceSpec(group="web", name="web-1", index=1))
    rig.store.put_instance(InstanceRow("web-1", "web", 1, "terminating", made.endpoint), 1.0, src="ready")
    fence = recording(rig)
    rig.ctl.recover()  # finishing a terminate: the instance is recorded as terminating already
    assert ("confirm", "terminate") in fence.seen
    assert ("terminate", "web-1") in rig.provider.calls
