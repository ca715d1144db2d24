"""Two controller processes electing a leader over a real store (SQLite file, PostgreSQL server):
kill -9 the leader and the standby takes over within lease + retry; a frozen leader that wakes
finds itself replaced, acts no more, and the store refuses its stale write; SIGTERM hands over.

The processes are ``tests/support/elector_proc.py``: an elector plus one fenced write per step.
Short lease timing (2 s lease, 1.5 s renew deadline, 0.25 s retry) keeps each test to seconds.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.elector_proc import ElectorProcess
from tests.support.wait import wait_until
from vmscale.store import SqlStore, open_store

LEASE_S, RENEW_S, RETRY_S = 2.0, 1.5, 0.25
TIMING = f"{LEASE_S},{RENEW_S},{RETRY_S}"
# Scheduling noise allowed on top of a bound (a shared 2-core machine; a Python child's step can
# wait for the CPU). The bounds themselves come from the lease settings.
NOISE_S = 1.5
SCOPE = "web"

Spawn = Callable[..., ElectorProcess]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def spawn(url: str, tmp_path: Path) -> Iterator[Spawn]:
    started: list[ElectorProcess] = []

    def start(name: str, *extra: str) -> ElectorProcess:
        proc = ElectorProcess(url, SCOPE, tmp_path / f"{name}.jsonl", "--lease", TIMING, *extra)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def leading(proc: ElectorProcess) -> dict[str, Any] | None:
    became = proc.became("leader")
    return became[-1] if became else None


def decisions_by_epoch(store: SqlStore) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for d in store.decisions(SCOPE, limit=1_000_000):
        if "n" in d:
            found.setdefault(int(d["epoch"]), []).append(int(d["n"]))
    return found


def start_pair(
    spawn: Spawn, *extra_b: str, extra_a: tuple[str, ...] = ()
) -> tuple[ElectorProcess, ElectorProcess]:
    a = spawn("a", *extra_a)
    wait_until(lambda: leading(a), "A leads", timeout_s=60)
    b = spawn("b", *extra_b)
    wait_until(lambda: b.events("started"), "B started", timeout_s=60)
    wait_until(lambda: len(a.events("wrote")) >= 3, "A writes under its lease", timeout_s=60)
    return a, b


def test_kill9_leader_standby_takes_over_after_expiry_within_lease_plus_retry(spawn: Spawn, url: str) -> None:
    """B acts as if on another machine (it cannot see that A's process died): it must wait for
    the lease to expire, and then take over within one retry."""
    a, b = start_pair(spawn, "--remote")
    assert not b.became("leader")
    a.signal(signal.SIGKILL)
    killed = time.monotonic()
    a.proc.wait(timeout=30)
    took = wait_until(lambda: leading(b), "B takes over", timeout_s=60)
    takeover_s = float(took["m"]) - killed
    # A renewed at most one retry before the kill, so its lease ran out at least LEASE_S - RETRY_S later.
    assert takeover_s >= LEASE_S - RETRY_S - 0.1, (
        f"took over {takeover_s:.2f} s after the kill: before expiry"
    )
    assert takeover_s <= LEASE_S + RETRY_S + NOISE_S, f"took over only {takeover_s:.2f} s after the kill"
    a_epoch = int(leading(a)["epoch"])
    assert took["epoch"] == a_epoch + 1
    wait_until(lambda: b.events("wrote"), "B writes", timeout_s=60)
    store = open_store(url)
    try:
        history = decisions_by_epoch(store)
    finally:
        store.close()
    written_by_a = [int(e["n"]) for e in a.events("wrote")]
    assert set(written_by_a) <= set(history[a_epoch]), "a write A saw committed is missing"
    assert set(history) == {a_epoch, a_epoch + 1}


def test_kill9_leader_on_the_same_host_is_replaced_without_waiting_for_expiry(spawn: Spawn) -> None:
    """The standby sees that the holder's process on this host is gone and takes the lease at once
    (long lease here: waiting for its expiry would take 30 s)."""
    a = spawn("a", "--lease", "30,20,0.25")
    wait_until(lambda: leading(a), "A leads", timeout_s=60)
    b = spawn("b", "--lease", "30,20,0.25")
    wait_until(lambda: b.events("started"), "B started", timeout_s=60)
    a.signal(signal.SIGKILL)
    killed = time.monotonic()
    took = wait_until(lambda: leading(b), "B takes over", timeout_s=60)
    assert float(took["m"]) - killed < 15.0  # half the lease: it did not wait for expiry
    assert took["epoch"] == int(leading(a)["epoch"]) + 1


def test_sigterm_releases_the_lease_for_an_immediate_hand_over(spawn: Spawn) -> None:
    a = spawn("a", "--lease", "30,20,0.25")
    wait_until(lambda: leading(a), "A leads", timeout_s=60)
    b = spawn("b", "--remote", "--lease", "30,20,0.25")
    wait_until(lambda: b.events("started"), "B started", timeout_s=60)
    a.signal(signal.SIGTERM)
    released = time.monotonic()
    assert a.proc.wait(timeout=60) == 0
    assert a.events("released")
    took = wait_until(lambda: leading(b), "B takes over", timeout_s=60)
    assert float(took["m"]) - released < 15.0  # half the lease: the release, not the expiry


def test_a_frozen_leader_wakes_replaced_acts_no_more_and_is_fenced(
    spawn: Spawn, url: str, tmp_path: Path
) -> None:
    """SIGSTOP the leader past its lease; the standby takes over; SIGCONT the old leader: it steps
    down without another write, and the one stale write it tries is refused by the store.

    With SQLite the leader freezes itself between two steps: frozen *inside* a write transaction it
    would hold SQLite's only write lock and nobody could take over until it woke (a documented
    limit of the one-host store). PostgreSQL ends such a transaction itself, so there the freeze is
    an outside SIGSTOP at any moment."""
    freeze = tmp_path / "freeze-a"
    a, b = start_pair(spawn, "--remote", extra_a=("--probe-stale", "--freeze-file", str(freeze)))
    a_epoch = int(leading(a)["epoch"])
    if url.startswith("sqlite"):
        freeze.touch()
        wait_until(lambda: a.events("freezing"), "A freezes itself", timeout_s=60)
    else:
        a.signal(signal.SIGSTOP)
    took = wait_until(lambda: leading(b), "B takes over from the frozen A", timeout_s=60)
    assert took["epoch"] == a_epoch + 1
    store = open_store(url)
    try:
        before_wake = decisions_by_epoch(store).get(a_epoch, [])
        writes_seen = len(a.events("wrote"))
        a.signal(signal.SIGCONT)
        woke = time.monotonic()
        probe = wait_until(lambda: a.events("probe"), "A notices it lost the lease", timeout_s=60)[0]
        assert probe["refused"] is True, "the store accepted a write of the old term"
        assert [e["new"] for e in a.events("role")][-1] == "standby"
        wait_until(lambda: len(b.events("wrote")) >= 3, "B keeps writing", timeout_s=60)
        assert decisions_by_epoch(store).get(a_epoch, []) == before_wake, "A wrote after waking"
        assert len(a.events("wrote")) == writes_seen
        assert all(float(e["m"]) < woke for e in a.events("wrote"))
    finally:
        store.close()
