"""Both stores, real SQLite and a real PostgreSQL server, held to one contract: the rows, the
lease, the registry, and fenced writes refused in the same transaction once the lease moved."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmscale.store import FencedError, HostWishRow, InstanceRow, SqlStore, open_store

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def other(url: str) -> Iterator[SqlStore]:
    """A second connection to the same store: another controller process."""
    s = open_store(url)
    yield s
    s.close()


def test_groups_round_trip(store: SqlStore, other: SqlStore) -> None:
    assert store.load_group("web") is None
    store.save_group("web", 3, False, {"p": {"streak": 2}}, 100.0)
    store.save_group("web", 4, True, {"p": {"streak": 0}}, 101.0)
    row = other.load_group("web")
    assert row is not None
    assert (row.name, row.desired, row.paused, row.policy_state) == ("web", 4, True, {"p": {"streak": 0}})


def test_instances_and_their_transitions(store: SqlStore, other: SqlStore) -> None:
    row = InstanceRow("web-2", "web", 2, "pending", vcpus=2, details={"host": "h1"})
    store.put_instance(row, 10.0, src="(none)", reason="launch requested")
    row.state, row.endpoint, row.launched_at = "booting", "http://127.0.0.1:8002", 11.0
    store.put_instance(row, 11.0, src="pending", reason="launched")
    store.put_instance(InstanceRow("web-1", "web", 1, "ready", warm=True), 12.0)  # no transition
    store.put_instance(InstanceRow("web-0", "web", 0, "gone"), 12.0, src="terminating", reason="x")
    store.put_instance(InstanceRow("api-1", "api", 1, "ready"), 12.0)
    listed = other.instances("web")
    assert [(i.name, i.state, i.warm) for i in listed] == [
        ("web-1", "ready", True),
        ("web-2", "booting", False),
    ]
    assert listed[1] == InstanceRow(
        "web-2", "web", 2, "booting", "http://127.0.0.1:8002", 2, False, 11.0, None, {"host": "h1"}
    )
    assert [i.name for i in other.instances("web", include_gone=True)] == ["web-0", "web-1", "web-2"]
    assert other.transitions("web-2") == [
        (10.0, "(none)", "pending", "launch requested"),
        (11.0, "pending", "booting", "launched"),
    ]
    assert other.transitions("web-1") == []


def test_host_wishes_are_kept_one_per_host_and_fenced(store: SqlStore, other: SqlStore) -> None:
    assert store.host_wishes() == []
    store.put_host_wish(HostWishRow("h2", True, False, "alice", "", 100.0))
    store.put_host_wish(HostWishRow("h1", True, True, "bob", "", 101.0))
    store.put_host_wish(HostWishRow("h1", True, False, "controller", "drain of h1 finished", 102.0))
    assert other.host_wishes() == [
        HostWishRow("h1", True, False, "controller", "drain of h1 finished", 102.0),
        HostWishRow("h2", True, False, "alice", "", 100.0),
    ]
    lease = store.leases("web").try_acquire("a/1/1.0", 30.0)
    assert lease is not None
    store.leases("web").release(lease)
    with pytest.raises(FencedError):  # a controller that lost its lease cannot change a wish
        store.fenced(lease).put_host_wish(HostWishRow("h2", False, False, "stale", "", 103.0))
    assert other.host_wishes()[1].actor == "alice"


def test_decisions_latest_first_limited_and_returned_oldest_first(store: SqlStore, other: SqlStore) -> None:
    for i in range(5):
        store.append_decision("web", 100.0 + i, "autoscaler", {"desired": i, "when": object()})
    store.append_decision("api", 200.0, "alice", {"desired": 9})
    got = other.decisions("web", limit=3)
    assert [d["desired"] for d in got] == [2, 3, 4]
    assert got[0]["t"] == 102.0 and got[0]["actor"] == "autoscaler"
    assert isinstance(got[0]["when"], str)  # not JSON: recorded as its text, not lost
    assert [d["actor"] for d in other.decisions("api")] == ["alice"]


def test_one_controller_holds_the_lease_and_the_other_sees_who(store: SqlStore, other: SqlStore) -> None:
    a = store.leases("web").try_acquire("A", 30.0, address="10.0.0.1:8900")
    assert a is not None and a.epoch == 1 and a.holder == "A"
    assert other.leases("web").try_acquire("B", 30.0) is None
    assert other.leases("api").try_acquire("B", 30.0) is not None  # scopes are independent
    info = other.leases("web").current()
    assert info is not None
    assert (info.holder, info.epoch, info.address, info.held) == ("A", 1, "10.0.0.1:8900", True)
    assert 0 <= info.age_s < 5 and 25 < info.expires_in_s <= 30
    assert other.leases("nobody").current() is None


def test_renewal_keeps_it_and_release_hands_it_over_at_once(store: SqlStore, other: SqlStore) -> None:
    a = store.leases("web").try_acquire("A", 30.0)
    assert a is not None
    renewed = store.leases("web").renew(a, 60.0)
    assert renewed.epoch == a.epoch and renewed.expires_at > a.expires_at
    assert store.leases("web").release(renewed)
    assert not store.leases("web").release(renewed)  # nothing left to release
    b = other.leases("web").try_acquire("B", 30.0)
    assert b is not None and b.epoch == 2
    with pytest.raises(FencedError):
        store.leases("web").renew(renewed, 30.0)


def test_an_expired_lease_passes_to_the_next_with_a_new_epoch(store: SqlStore, other: SqlStore) -> None:
    a = store.leases("web").try_acquire("A", 0.3)
    assert a is not None
    deadline = time.monotonic() + 30
    b = None
    while b is None and time.monotonic() < deadline:
        b = other.leases("web").try_acquire("B", 30.0)
        time.sleep(0.05)
    assert b is not None and b.epoch == 2
    with pytest.raises(FencedError, match="'B' holds it at epoch 2"):
        store.leases("web").renew(a, 30.0)


def test_fenced_writes_pass_while_current_and_are_refused_after(store: SqlStore, other: SqlStore) -> None:
    a = store.leases("web").try_acquire("A", 30.0)
    assert a is not None
    fenced_a = store.fenced(a)
    fenced_a.save_group("web", 2, False, {}, 1.0)
    fenced_a.append_decision("web", 1.0, "autoscaler", {"desired": 2})
    fenced_a.put_instance(InstanceRow("web-1", "web", 1, "pending"), 1.0, src="(none)", reason="launch")
    b = other.leases("web").try_acquire("B", 30.0, replacing="A")  # A declared dead
    assert b is not None
    for write in (
        lambda: fenced_a.save_group("web", 5, False, {}, 2.0),
        lambda: fenced_a.append_decision("web", 2.0, "autoscaler", {"desired": 5}),
        lambda: fenced_a.put_instance(InstanceRow("web-9", "web", 9, "pending"), 2.0, src="(none)"),
    ):
        with pytest.raises(FencedError, match="epoch 1 is no longer current"):
            write()
    group = other.load_group("web")
    assert group is not None and group.desired == 2
    assert [d["desired"] for d in other.decisions("web")] == [2]
    assert [i.name for i in other.instances("web")] == ["web-1"]
    other.fenced(b).save_group("web", 3, False, {}, 3.0)  # the new term writes
    assert fenced_a.load_group("web") is not None  # reads are never fenced


def test_a_released_lease_fences_its_own_writes(store: SqlStore) -> None:
    a = store.leases("web").try_acquire("A", 30.0)
    assert a is not None
    store.leases("web").release(a)
    with pytest.raises(FencedError):
        store.fenced(a).append_decision("web", 1.0, "x", {})


def test_no_write_of_an_old_term_lands_after_the_new_term_began(store: SqlStore, other: SqlStore) -> None:
    """A leader writing as fast as it can while another takes over: every decision it managed to
    write is in the history before the takeover returned, none after."""
    a = store.leases("web").try_acquire("A", 30.0)
    assert a is not None
    fenced_a = store.fenced(a)
    written: list[int] = []
    refused = threading.Event()

    def old_leader() -> None:
        for i in range(100_000):
            try:
                fenced_a.append_decision("web", float(i), "old", {"n": i})
            except FencedError:
                refused.set()
                return
            written.append(i)

    thread = threading.Thread(target=old_leader)
    thread.start()
    deadline = time.monotonic() + 30
    while len(written) < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    b = other.leases("web").try_acquire("B", 30.0, replacing="A")
    assert b is not None
    at_takeover = [d["n"] for d in other.decisions("web", limit=1_000_000)]
    thread.join(timeout=60)
    assert refused.is_set()
    assert [d["n"] for d in other.decisions("web", limit=1_000_000)] == at_takeover == written


def test_two_contenders_racing_one_wins(url: str) -> None:
    stores = [open_store(url) for _ in range(4)]
    try:
        for round_ in range(10):
            scope = f"race-{round_}"
            results: list[object] = [None] * len(stores)
            barrier = threading.Barrier(len(stores))

            def contend(
                i: int,
                scope: str = scope,
                results: list[object] = results,
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait(timeout=30)
                results[i] = stores[i].leases(scope).try_acquire(f"C{i}", 30.0)

            threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(stores))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert sum(r is not None for r in results) == 1, results
    finally:
        for s in stores:
            s.close()


def test_the_registry_lists_every_controller_leader_first(store: SqlStore, other: SqlStore) -> None:
    store.leases("web").heartbeat("A", "a:8900", "standby")
    other.leases("web").heartbeat("B", "b:8900", "standby")
    other.leases("api").heartbeat("C", "c:8900", "leader")
    b = other.leases("web").try_acquire("B", 30.0)
    assert b is not None
    other.leases("web").heartbeat("B", "b:8900", "leader")
    listed = store.leases("web").controllers()
    assert [(c.id, c.address, c.role, c.leads) for c in listed] == [
        ("B", "b:8900", "leader", True),
        ("A", "a:8900", "standby", False),
    ]
    assert all(0 <= c.last_seen_age_s < 5 for c in listed)
    other.leases("web").forget("B")
    assert [c.id for c in store.leases("web").controllers()] == ["A"]


def test_decisions_and_transitions_carry_the_epoch_that_wrote_them(store: SqlStore, url: str) -> None:
    from vmscale.store.transfer import export_rows

    a = store.leases("web").try_acquire("A", 30.0)
    assert a is not None
    store.fenced(a).append_decision("web", 1.0, "autoscaler", {})
    store.fenced(a).put_instance(InstanceRow("web-1", "web", 1, "pending"), 1.0, src="(none)")
    store.append_decision("web", 2.0, "vmscale down", {})  # unfenced: no term
    rows = list(export_rows(store))
    assert [r["epoch"] for t, r in rows if t == "decisions"] == [1, None]
    assert [r["epoch"] for t, r in rows if t == "transitions"] == [1]
