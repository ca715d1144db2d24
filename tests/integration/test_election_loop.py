"""The election loop: an elector stepping on its own thread with the real clock (the unit tests
drive the same elector step by step on a fake clock)."""

from __future__ import annotations

from tests.support.wait import wait_until
from vmscale.clock import SystemClock
from vmscale.leader import ElectionLoop, Elector, Role, Timing
from vmscale.store.memory import MemoryLeases


def test_the_election_loop_leads_on_its_own_thread_and_hands_over_on_stop() -> None:
    leases = MemoryLeases("web", SystemClock())
    a = Elector(leases, "A", clock=SystemClock(), timing=Timing(1.0, 0.5, 0.01))
    b = Elector(leases, "B", clock=SystemClock(), timing=Timing(1.0, 0.5, 0.01))
    loop_a, loop_b = ElectionLoop(a), ElectionLoop(b)
    loop_a.start()
    try:
        wait_until(lambda: a.is_leader, "A leads", timeout_s=30)
        loop_b.start()
        wait_until(lambda: "B" in [c.id for c in leases.controllers()], "B stands by", timeout_s=30)
        renewals = leases.calls.count("renew")
        wait_until(lambda: leases.calls.count("renew") > renewals + 3, "A keeps renewing", timeout_s=30)
        assert not b.is_leader
        loop_a.stop(release=True)
        assert a.role is Role.STOPPED
        wait_until(lambda: b.is_leader, "B takes over after the release", timeout_s=30)
        assert b.epoch == 2
    finally:
        loop_a.stop(release=False)
        loop_b.stop(release=True)
