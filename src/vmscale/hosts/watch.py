"""Is a host answering? Reachability observed from calls, and the back-off before trying again.

Pure bookkeeping over times the caller passes in (no clock of its own, no I/O), so the rules are
unit-tested with plain numbers:

* every call that reaches the daemon (whatever libvirt answers) marks the host **up**;
* a call that cannot reach it (no connection, a lost one, a timeout) starts or continues a
  failure streak: the host is **not answering** at once (nothing new is placed on it) and
  **unreachable** once the streak is older than the grace period (its instances get replaced);
* after each failure the next attempt waits ``initial x 2^(failures-1)`` seconds, at most ``max``:
  a dead host costs one bounded attempt per back-off step, not one per call of every tick.

Whether a host is cordoned or draining is not observed here: those are the controller's wishes
(``HostInventory``), kept apart from what the network says.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class Reach(StrEnum):
    UNKNOWN = "unknown"  # never asked yet
    UP = "up"
    NOT_ANSWERING = "not answering"  # failing, still within the grace period
    UNREACHABLE = "unreachable"  # failing for longer than the grace period


@dataclass(frozen=True, slots=True)
class WatchState:
    reach: Reach
    failures: int
    failing_for_s: float  # 0 when up
    retry_in_s: float  # 0 when a call may go now
    last_error: str


class HostWatch:
    """One host's failure streak and back-off. Safe to share between threads."""

    def __init__(self, grace_s: float, backoff_initial_s: float, backoff_max_s: float) -> None:
        self.grace_s = grace_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._lock = threading.Lock()
        self._answered = False
        self._failing_since: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""

    def may_try(self, now: float) -> bool:
        with self._lock:
            return now >= self._retry_at

    def answered(self, _now: float) -> None:
        with self._lock:
            self._answered = True
            self._failing_since = None
            self._failures = 0
            self._retry_at = 0.0
            self._last_error = ""

    def failed(self, now: float, error: str) -> None:
        with self._lock:
            if self._failing_since is None:
                self._failing_since = now
            self._failures += 1
            delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self._failures - 1))
            self._retry_at = now + delay
            self._last_error = error

    def state(self, now: float) -> WatchState:
        with self._lock:
            retry_in = max(0.0, self._retry_at - now)
            if self._failing_since is None:
                reach = Reach.UP if self._answered else Reach.UNKNOWN
                return WatchState(reach, 0, 0.0, retry_in, "")
            failing_for = now - self._failing_since
            reach = Reach.UNREACHABLE if failing_for >= self.grace_s else Reach.NOT_ANSWERING
            return WatchState(reach, self._failures, failing_for, retry_in, self._last_error)
