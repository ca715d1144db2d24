"""The elector, table-tested: two controllers (A, B) over an in-memory lease store on a FakeClock.

Each case is a script of steps and the expected outcome. Script words:
    "A"        A runs one step                 "+2.5"     time passes
    "A?"       assert A leads right now        "A-"       assert A does not lead right now
    "down 2"   the store fails the next 2 calls   "up"   it works again
    "A release" A hands over (SIGTERM)
"""

from __future__ import annotations

import pytest

from vmscale.clock import FakeClock
from vmscale.leader.elector import Elector, Role, Timing
from vmscale.store.base import Lease
from vmscale.store.memory import MemoryLeases


class Rig:
    def __init__(self, *, gone: set[str] | None = None) -> None:
        self.clock = FakeClock(1000.0)
        self.leases = MemoryLeases("web", self.clock)
        self.changes: list[tuple[str, str, str]] = []
        gone = gone or set()
        self.electors = {
            name: Elector(
                self.leases,
                name,
                clock=self.clock,
                address=f"{name.lower()}:8900",
                holder_gone=lambda holder: holder in gone,
                on_change=lambda old, new, _lease, _why, name=name: self.changes.append(
                    (name, old.value, new.value)
                ),
            )
            for name in ("A", "B")
        }

    def play(self, script: str) -> None:
        for word in script.split(","):
            word = word.strip()
            if word.startswith("+"):
                self.clock.advance(float(word[1:]))
            elif word.startswith("down "):
                self.leases.fail_next(int(word.split()[1]))
            elif word == "up":
                self.leases.fail_next(0)
            elif word.endswith(" release"):
                self.electors[word.split()[0]].release()
            elif word.endswith("?"):
                assert self.electors[word[:-1]].is_leader, f"{word[:-1]} should lead at {self.clock.now()}"
            elif word.endswith("-"):
                assert not self.electors[word[:-1]].is_leader, f"{word[:-1]} should not lead"
            else:
                self.electors[word].step()

    def roles(self) -> dict[str, str]:
        """What each believes right now: a leader past its deadline already counts as a standby."""
        return {
            n: "leader" if e.is_leader else "stopped" if e.role is Role.STOPPED else "standby"
            for n, e in self.electors.items()
        }

    def epochs(self) -> dict[str, int | None]:
        return {n: e.epoch for n, e in self.electors.items()}


CASES = [
    # id, script, roles at the end, epochs at the end
    ("first-step-acquires", "A", {"A": "leader", "B": "standby"}, {"A": 1, "B": None}),
    (
        "standby-waits-while-leader-renews",
        "A, B, +2, A, B, +2, A, B",
        {"A": "leader", "B": "standby"},
        {"A": 1, "B": None},
    ),
    (
        "renewing-past-the-duration-keeps-the-lease",
        "A" + ", +2, A, B" * 10,
        {"A": "leader", "B": "standby"},
        {"A": 1, "B": None},
    ),
    (
        "standby-does-not-take-over-before-expiry",
        "A, +14.9, B",
        {"A": "standby", "B": "standby"},
        {"A": None, "B": None},
    ),
    ("standby-takes-over-after-expiry", "A, +15, B", {"A": "standby", "B": "leader"}, {"A": None, "B": 2}),
    (
        "old-leader-finds-itself-replaced",
        "A, +15, B, A",
        {"A": "standby", "B": "leader"},
        {"A": None, "B": 2},
    ),
    (
        "short-outage-keeps-the-leader",
        "A, down 1, +2, A, +2, A, A?",
        {"A": "leader", "B": "standby"},
        {"A": 1, "B": None},
    ),
    (
        "long-outage-steps-down-at-the-deadline",
        "A, down 99, +2, A, +2, A, +2, A, +2, A, A?, +1.9, A?, +0.1, A-",
        {"A": "standby", "B": "standby"},
        {"A": None, "B": None},
    ),
    (
        "after-an-outage-the-lease-returns-with-a-new-epoch",
        "A, down 99, +2, A, +2, A, +2, A, +2, A, +2, A, A-, up, +2, A",
        {"A": "leader", "B": "standby"},
        {"A": 2, "B": None},
    ),
    (
        "frozen-leader-wakes-as-follower-before-its-step",
        "A, +20, A-, B, B?, A",
        {"A": "standby", "B": "leader"},
        {"A": None, "B": 2},
    ),
    ("release-hands-over-at-once", "A, A release, B", {"A": "stopped", "B": "leader"}, {"A": None, "B": 2}),
    (
        "a-stopped-elector-never-acquires",
        "A release, +30, A",
        {"A": "stopped", "B": "standby"},
        {"A": None, "B": None},
    ),
    (
        "store-down-at-start-nobody-leads",
        "down 3, A, B",
        {"A": "standby", "B": "standby"},
        {"A": None, "B": None},
    ),
]


@pytest.mark.parametrize(("script", "roles", "epochs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_election_script(script: str, roles: dict[str, str], epochs: dict[str, int | None]) -> None:
    rig = Rig()
    rig.play(script)
    assert rig.roles() == roles
    assert rig.epochs() == epochs


def test_a_leader_stops_acting_before_its_lease_can_pass_to_another() -> None:
    """Store unreachable for the leader only: at every moment, at most one of A and B believes it
    leads, and B takes over only after A has stepped down."""
    rig = Rig()
    a, b = rig.electors["A"], rig.electors["B"]
    a.step()
    stepped_down_at = None
    taken_at = None
    for _ in range(200):  # 20 s in 0.1 s ticks; A's renewals all fail, B tries every tick
        rig.clock.advance(0.1)
        rig.leases.fail_next(1)
        a.step()
        if stepped_down_at is None and not a.is_leader:
            stepped_down_at = rig.clock.now()
        b.step()
        if taken_at is None and b.is_leader:
            taken_at = rig.clock.now()
        assert not (a.is_leader and b.is_leader)
    assert stepped_down_at is not None and taken_at is not None
    assert stepped_down_at - 1000.0 == pytest.approx(10.0, abs=0.11)  # the renew deadline
    assert taken_at - 1000.0 == pytest.approx(15.0, abs=0.11)  # the lease's expiry, store clock
    assert taken_at > stepped_down_at


def test_a_dead_holder_on_this_host_is_replaced_without_waiting() -> None:
    rig = Rig(gone={"A"})
    rig.play("A, +1, B")  # A's process died after its first step
    assert rig.roles()["B"] == "leader"
    assert rig.epochs()["B"] == 2


def test_a_live_holder_is_not_replaced_early() -> None:
    rig = Rig(gone=set())
    rig.play("A, +1, B")
    assert rig.roles()["B"] == "standby"
    assert rig.electors["B"].leader is not None
    assert rig.electors["B"].leader.holder == "A"
    assert rig.electors["B"].leader.address == "a:8900"


def test_on_change_reports_each_change_once() -> None:
    rig = Rig()
    rig.play("A, A, +15, B, A, B release")
    assert rig.changes == [
        ("A", "standby", "leader"),
        ("B", "standby", "leader"),
        ("A", "leader", "standby"),
        ("B", "leader", "stopped"),
    ]


def test_step_never_sleeps_past_the_renew_deadline() -> None:
    rig = Rig()
    a = rig.electors["A"]
    assert a.step() == 2.0
    rig.leases.fail_next(99)
    rig.clock.advance(9.0)
    assert a.step() == pytest.approx(1.0)  # renew failed; 1 s left before the deadline
    rig.clock.advance(1.0)
    a.step()
    assert a.role is Role.FOLLOWER


def test_the_registry_shows_both_and_the_leader_first() -> None:
    rig = Rig()
    rig.play("B, A")
    listed = rig.leases.controllers()
    assert [(c.id, c.role, c.leads) for c in listed] == [("B", "leader", True), ("A", "standby", False)]
    rig.play("B release")
    assert [c.id for c in rig.leases.controllers()] == ["A"]


def test_a_fenced_write_makes_the_leader_step_down_at_once() -> None:
    rig = Rig(gone={"A"})
    rig.play("A, B")  # B replaced A (believed dead) while A still thinks it leads
    a = rig.electors["A"]
    assert a.is_leader
    a.step_down("a fenced write was refused")
    assert not a.is_leader and a.role is Role.FOLLOWER and a.lease is None
    assert ("A", "leader", "standby") in rig.changes
    a.step()
    assert not a.is_leader  # B holds it


def test_release_gives_up_the_lease_in_the_store() -> None:
    rig = Rig()
    rig.play("A, A release")
    info = rig.leases.current()
    assert info is not None and not info.held and info.epoch == 1


def test_the_lease_the_elector_holds_is_the_stores() -> None:
    rig = Rig()
    rig.play("A, +2, A")
    lease = rig.electors["A"].lease
    assert isinstance(lease, Lease)
    assert lease == rig.leases.row
    assert lease.expires_at == pytest.approx(1002.0 + 15.0)


@pytest.mark.parametrize(
    ("lease_s", "renew_s", "retry_s"),
    [(10.0, 10.0, 2.0), (15.0, 10.0, 10.0), (15.0, 10.0, 0.0), (5.0, 10.0, 2.0)],
    ids=["deadline-equals-lease", "retry-equals-deadline", "zero-retry", "deadline-above-lease"],
)
def test_impossible_timing_is_refused(lease_s: float, renew_s: float, retry_s: float) -> None:
    with pytest.raises(ValueError, match="retry_s < renew_deadline_s < lease_s"):
        Timing(lease_s, renew_s, retry_s)


def test_a_new_leader_forgets_registry_entries_of_controllers_known_dead() -> None:
    """A crashed controller never says goodbye; left in the registry it would look alive to a
    leader deciding at stop whether someone can take over."""
    rig = Rig(gone={"crashed"})
    rig.leases.heartbeat("crashed", "crashed:8900", "leader")
    rig.leases.heartbeat("B", "b:8900", "standby")
    rig.play("A")
    assert [c.id for c in rig.leases.controllers()] == ["A", "B"]
