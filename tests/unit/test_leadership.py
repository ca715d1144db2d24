"""Terms of leadership (``vmscale.leadership``): a controller acts only while it leads, stops at once
when it no longer does and drops what it knew; a standby serves the store's view and refuses
writes with the leader's address. The elector runs on a FakeClock over a real SQLite lease."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controller_rig import Rig
from tests.support.wait import wait_until
from vmscale.controller import Controller
from vmscale.controller.fence import LeaseFence
from vmscale.errors import NotLeaderError
from vmscale.leader import Elector, Role, Timing
from vmscale.leader.metrics import LeadershipCollector
from vmscale.leadership import ControlRouter, LeaderView, Terms
from vmscale.metrics import ControllerMetrics
from vmscale.standby import StoreControl
from vmscale.store import InstanceRow, Lease, SqlStore, StoreUnavailableError


class FlakyView(SqlStore):
    """The store fenced by a lease, as ``store.fenced(lease)``, whose next instance write fails
    when the test says so (``Pair.flaky``)."""

    def __init__(self, pair: Pair, lease: Lease) -> None:
        super().__init__(pair.store.engine, fence=lease)
        self._pair = pair

    def put_instance(self, row: InstanceRow, t: float, *, src: str | None = None, reason: str = "") -> None:
        if self._pair.flaky:
            self._pair.flaky = False
            raise StoreUnavailableError("simulated: the database went away")
        super().put_instance(row, t, src=src, reason=reason)


class Pair:
    """One controller's leadership parts over the rig's store, and a rival holding the same scope."""

    def __init__(self, tmp: Path) -> None:
        self.rig = Rig(tmp, group={"name": "web", "min": 1, "max": 3, "interval_s": 1})
        self.store: SqlStore = self.rig.store
        self.leases = self.store.leases("web")
        self.elector = Elector(
            self.leases, "ctl-a", clock=self.rig.clock, timing=Timing(15, 10, 2), address="http://a:8900"
        )
        self.view = LeaderView(self.elector, self.leases)
        standby = StoreControl(
            self.rig.cfg,
            self.store,
            self.rig.ctl.events,
            provider="fake",
            lb="none",
            frontend_url=None,
            policies=["threshold"],
        )
        self.router = ControlRouter(standby, self.view, self.elector.step_down)
        self.reports: list[str] = []
        self.terms = Terms(self.elector, self.take_over, self.router, self.view, self.reports.append)
        self.elector.on_change = self.terms.on_change
        self.built: list[Controller] = []
        self.flaky = False  # the next instance write of a term fails once (the store went away)

    def take_over(self, lease: Lease) -> Controller:
        view = FlakyView(self, lease)
        elector = self.elector
        ctl = self.rig.new_controller(
            store=view, fence=LeaseFence(lambda: elector.is_leader, view.check_fence, lease.epoch)
        )
        ctl.recover()
        self.built.append(ctl)
        return ctl

    def rival_leads(self) -> None:
        """Controller B holds the lease (A's was released, or A never had it)."""
        assert self.leases.try_acquire("ctl-b", 15.0, address="http://b:8900") is not None


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return Pair(tmp_path)


@pytest.fixture
def running(pair: Pair) -> Iterator[threading.Event]:
    """``Terms.run`` on its own thread (the service's loop thread), stopped at the end."""
    stop = threading.Event()
    thread = threading.Thread(target=pair.terms.run, args=(stop,), daemon=True)
    thread.start()
    yield stop
    stop.set()
    pair.terms.interrupt()
    thread.join(10)
    assert not thread.is_alive()


def test_a_standby_serves_the_store_and_refuses_writes_naming_the_leader(pair: Pair) -> None:
    pair.rival_leads()
    pair.elector.step()
    assert not pair.terms.begin(), "a standby took over"
    pair.store.save_group("web", 2, False, {}, 1.0)
    g = pair.router.group()
    assert (g.desired, g.actual, g.provider) == (2, 0, "fake")
    assert g.leadership is not None
    assert (g.leadership["role"], g.leadership["leader_id"]) == ("standby", "ctl-b")
    with pytest.raises(NotLeaderError) as refused:
        pair.router.set_desired(3, "alice")
    assert refused.value.leader_address == "http://b:8900"
    assert "the leader is ctl-b at http://b:8900" in str(refused.value)
    assert pair.store.load_group("web").desired == 2  # type: ignore[union-attr]
    assert pair.rig.provider.calls == [], "a standby called the provider"


def test_a_standby_without_a_leader_says_to_retry(pair: Pair) -> None:
    with pytest.raises(NotLeaderError, match="no controller leads right now; retry"):
        pair.router.set_paused(True, "alice")


def test_the_leader_takes_over_from_the_store_and_the_provider(pair: Pair) -> None:
    pair.elector.step()
    assert pair.terms.begin()
    pair.rig.tick()
    assert pair.terms.controller is pair.built[0]
    g = pair.router.set_desired(2, "alice")
    assert g.leadership is not None and g.leadership["role"] == "leader" and g.leadership["epoch"] == 1
    who = pair.router.leadership(full=True)
    assert [(c.id, c.leads, c.this) for c in who.controllers] == [("ctl-a", True, True)]


def test_losing_the_lease_stops_the_term_at_once_and_drops_its_state(
    pair: Pair, running: threading.Event
) -> None:
    pair.elector.step()
    wait_until(lambda: pair.terms.controller is not None, "A leads", 10)
    wait_until(lambda: pair.rig.provider.launch_count == 1, "A launches the group's instance", 10)
    calls = len(pair.rig.provider.calls)
    pair.rig.clock.advance(10.5)  # past the renew deadline without a renewal (frozen, or cut off)
    wait_until(lambda: pair.elector.role is Role.FOLLOWER, "A steps down", 10)
    wait_until(lambda: pair.terms.controller is None, "the term's state is dropped", 10)
    assert pair.router.group().leadership["role"] == "standby"  # type: ignore[index]
    pair.rig.provider.vanish("web-1")  # there would be work to do; a standby does none
    pair.rig.clock.advance(1)
    with pytest.raises(NotLeaderError):
        pair.router.set_desired(2, "alice")
    assert len(pair.rig.provider.calls) == calls


def test_a_store_failure_in_a_tick_rebuilds_the_state_from_the_store(
    pair: Pair, running: threading.Event
) -> None:
    pair.elector.step()
    wait_until(lambda: pair.rig.provider.launch_count == 1, "the first term launches web-1", 10)
    pair.flaky = True  # the first term's next write fails: what it holds in memory gets ahead
    pair.rig.provider.vanish("web-1")

    def replaced() -> bool:
        pair.elector.step()  # the election thread's renewals, while fake time passes
        pair.rig.clock.advance(0.5)
        return pair.rig.provider.launch_count == 2

    wait_until(replaced, "a new term, rebuilt from the store and the provider, replaces web-1", 20)
    assert len(pair.built) == 2 and pair.terms.controller is pair.built[1]
    assert "the store failed under a tick" in pair.reports[0] and "rebuilding the state" in pair.reports[0]


def test_between_two_terms_the_leader_is_not_acting_and_a_write_says_why(
    pair: Pair, running: threading.Event
) -> None:
    """After a store failure the term ends and the next one waits for its back-off: meanwhile the
    process still holds the lease but acts on nothing, so it must not look like an acting leader
    (first_tick_at) and a write must not blame another controller (seen in CI: a client saw
    'acting', read the store's view and wrote into the gap)."""
    pair.elector.step()
    wait_until(lambda: pair.rig.provider.launch_count == 1, "the first term launches web-1", 10)
    wait_until(lambda: pair.view.first_tick_at is not None, "the first term has ticked", 10)
    pair.flaky = True
    pair.rig.provider.vanish("web-1")

    def failed() -> bool:
        pair.elector.step()
        pair.rig.clock.advance(0.5)
        return bool(pair.reports)

    wait_until(failed, "the store failure ends the term", 10)
    assert pair.terms.controller is None, "the next term began without its back-off"
    who = pair.router.leadership()
    assert who.role == "leader" and who.first_tick_at is None
    with pytest.raises(NotLeaderError, match="ctl-a leads but is starting its term") as refused:
        pair.router.set_desired(2, "alice")
    assert refused.value.leader_address == "http://a:8900"


def test_leadership_in_prometheus(pair: Pair) -> None:
    metrics = ControllerMetrics("web")
    metrics.registry.register(LeadershipCollector(pair.elector, "web"))
    pair.elector.step()
    pair.rig.clock.advance(3)
    text = metrics.render().decode()
    assert 'vmscale_leader{controller="ctl-a",scope="web"} 1.0' in text
    assert 'vmscale_leader_lease_age_seconds{scope="web"} 3.0' in text
    pair.rig.clock.advance(8)  # past the renew deadline: no longer acting, whatever the thread did
    assert 'vmscale_leader{controller="ctl-a",scope="web"} 0.0' in metrics.render().decode()


def test_the_standby_view_counts_the_group_as_the_leader_recorded_it(pair: Pair) -> None:
    rows = [
        ("web-1", "ready", False),
        ("web-2", "booting", False),
        ("web-3", "draining", False),
        ("web-4", "warm", True),  # a pool instance: not part of the group's size
    ]
    for i, (name, state, pool) in enumerate(rows, 1):
        pair.store.put_instance(
            InstanceRow(name, "web", i, state, f"http://127.0.0.1:{18100 + i}", warm=pool), 1.0, src="(none)"
        )
    pair.store.save_group("web", 2, True, {}, 1.0)
    pair.store.append_decision("web", 2.0, "alice", {"desired": 2, "direction": "up"})
    g = pair.router.group()
    assert (g.desired, g.actual, g.ready, g.warm, g.paused) == (2, 2, 1, 1, True)
    assert g.states == {"ready": 1, "booting": 1, "draining": 1, "warm": 1}
    assert g.last_decision is not None and g.last_decision["actor"] == "alice"
    assert pair.router.endpoints() == [{"name": "web-1", "url": "http://127.0.0.1:18101"}]
    assert [i.name for i in pair.router.instances()] == ["web-1", "web-2", "web-3", "web-4"]
    assert pair.router.history() == []
