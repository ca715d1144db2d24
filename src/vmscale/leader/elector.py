"""Leader election over a lease store: which of the controllers sharing a store may act.

Modelled on client-go's ``leaderelection`` (lease 15 s, renew deadline 10 s, retry 2 s), with a
fencing epoch added. Pure logic over a ``LeaseStore`` and an injected ``Clock``; the caller runs
``step()`` every ``retry_s`` (``step`` returns how long until it is due again).

    follower --try_acquire ok--> leader --renew ok--> leader
        ^                          |  renew refused (FencedError)       -> follower at once
        |                          |  no successful renew for renew_deadline_s -> follower
        +--------------------------+  release() (graceful hand-over)    -> stopped

Safety does not rest on this class alone: every write the leader makes goes through
``store.fenced(elector.lease)``, which the store refuses once another controller has taken the
lease. The elector makes a leader *stop acting before* that can happen: it counts the renew
deadline from the moment the last successful renewal was *sent* (so the store's expiry, set while
the call ran, is later), and ``is_leader`` reads the clock itself, so a process that was frozen
past its deadline is a follower the instant it wakes, before it runs another step.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from vmscale.clock import Clock
from vmscale.errors import StoreError
from vmscale.store.base import FencedError, LeaderInfo, Lease, LeaseStore

log = logging.getLogger("vmscale.leader")


class Role(enum.Enum):
    FOLLOWER = "standby"
    LEADER = "leader"
    STOPPED = "stopped"  # released on shutdown: never tries again


@dataclass(frozen=True)
class Timing:
    lease_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_s < self.renew_deadline_s < self.lease_s:
            raise ValueError(
                "lease timing must satisfy 0 < retry_s < renew_deadline_s < lease_s, got "
                f"{self.retry_s:g} / {self.renew_deadline_s:g} / {self.lease_s:g}"
            )


# (old role, new role, the lease when leading, why) -> None; called from step()/release()
OnChange = Callable[[Role, Role, Lease | None, str], None]


class Elector:
    def __init__(
        self,
        leases: LeaseStore,
        holder: str,
        *,
        clock: Clock,
        timing: Timing | None = None,
        address: str = "",
        holder_gone: Callable[[str], bool] | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        self.leases = leases
        self.holder = holder
        self.clock = clock
        self.timing = timing or Timing()
        self.address = address
        self.holder_gone = holder_gone or (lambda _holder: False)
        self.on_change = on_change
        self.role = Role.FOLLOWER
        self.lease: Lease | None = None  # the lease while leading
        self.leader: LeaderInfo | None = None  # who leads, as last seen by a follower
        self.last_error = ""
        self._renewed_at = 0.0  # monotonic time the last successful acquire/renew was sent
        self._leader_seen_at = 0.0  # monotonic time ``leader`` was read
        self._lock = threading.RLock()  # step() may run on an ElectionLoop while the controller steps down

    # -- what the controller reads --------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Leading, and within the renew deadline right now (read from the clock, not the last step)."""
        return (
            self.role is Role.LEADER
            and self.clock.monotonic() - self._renewed_at < self.timing.renew_deadline_s
        )

    @property
    def epoch(self) -> int | None:
        return self.lease.epoch if self.is_leader and self.lease is not None else None

    def lease_age_s(self) -> float | None:
        """Seconds since the scope's lease was last renewed, as this controller knows it: its own
        last renewal while leading, else the leader's as last read plus the time since; None when
        nobody holds it (as far as this controller knows)."""
        now = self.clock.monotonic()
        if self.role is Role.LEADER:
            return now - self._renewed_at
        leader = self.leader
        if leader is not None and leader.held:
            return leader.age_s + (now - self._leader_seen_at)
        return None

    # -- the step -------------------------------------------------------------------------------

    def step(self) -> float:
        """Acquire or renew once; returns seconds until the next step is due."""
        with self._lock:
            return self._step()

    def _step(self) -> float:
        if self.role is Role.STOPPED:
            return self.timing.retry_s
        if self.role is Role.LEADER:
            self._renew()
        if self.role is Role.FOLLOWER:
            self._try_acquire()
        self._heartbeat()
        if self.role is Role.LEADER:  # never sleep past the deadline: step down on time
            left = self.timing.renew_deadline_s - (self.clock.monotonic() - self._renewed_at)
            return max(0.0, min(self.timing.retry_s, left))
        return self.timing.retry_s

    def _renew(self) -> None:
        assert self.lease is not None
        sent = self.clock.monotonic()
        if sent - self._renewed_at >= self.timing.renew_deadline_s:
            self._become(
                Role.FOLLOWER, None, f"no renewal for {sent - self._renewed_at:.1f} s (renew deadline)"
            )
            return
        try:
            self.lease = self.leases.renew(self.lease, self.timing.lease_s)
        except FencedError as exc:
            self._become(Role.FOLLOWER, None, f"lease lost: {exc}")
            return
        except StoreError as exc:
            self.last_error = f"renew failed: {exc}"
            log.warning("%s", self.last_error)
            if self.clock.monotonic() - self._renewed_at >= self.timing.renew_deadline_s:
                self._become(Role.FOLLOWER, None, f"could not renew before the renew deadline: {exc}")
            return
        self._renewed_at = sent
        self.last_error = ""

    def _try_acquire(self) -> None:
        sent = self.clock.monotonic()
        try:
            lease = self.leases.try_acquire(self.holder, self.timing.lease_s, address=self.address)
            if lease is None:
                self.leader = self.leases.current()
                self._leader_seen_at = self.clock.monotonic()
                gone = self.leader is not None and self.leader.held and self.holder_gone(self.leader.holder)
                if gone and self.leader is not None:
                    lease = self.leases.try_acquire(
                        self.holder, self.timing.lease_s, address=self.address, replacing=self.leader.holder
                    )
        except StoreError as exc:
            self.last_error = f"acquire failed: {exc}"
            return
        self.last_error = ""
        if lease is not None:
            self._renewed_at = sent
            self.leader = None
            self._become(Role.LEADER, lease, f"acquired the lease at epoch {lease.epoch}")
            self._prune()

    def _prune(self) -> None:
        """Forget the registry entries of controllers known to be dead (on this host, their process
        is gone): a crashed controller never says goodbye, and a stop asks who else is alive."""
        try:
            for c in self.leases.controllers():
                if c.id != self.holder and self.holder_gone(c.id):
                    self.leases.forget(c.id)
        except StoreError as exc:  # cosmetic: the next acquisition tries again
            log.debug("could not prune the controller registry: %s", exc)

    def _heartbeat(self) -> None:
        try:
            self.leases.heartbeat(self.holder, self.address, self.role.value)
        except StoreError as exc:
            self.last_error = self.last_error or f"heartbeat failed: {exc}"

    def _become(self, role: Role, lease: Lease | None, why: str) -> None:
        old, self.role, self.lease = self.role, role, lease
        log.info("%s: %s -> %s: %s", self.holder, old.value, role.value, why)
        if self.on_change is not None and old is not role:
            self.on_change(old, role, lease, why)

    def step_down(self, why: str) -> None:
        """Stop leading now, e.g. when a fenced write raised ``FencedError``: the store already knows
        another leads. The next step tries to acquire again (it gets the lease only when free)."""
        with self._lock:
            if self.role is Role.LEADER:
                self._become(Role.FOLLOWER, None, why)

    # -- shutdown -------------------------------------------------------------------------------

    def release(self) -> None:
        """Hand over now (SIGTERM): give the lease up so a standby need not wait for it to expire,
        leave the registry, and never try again."""
        with self._lock:
            lease = self.lease if self.role is Role.LEADER else None
            self._become(Role.STOPPED, None, "released on shutdown")
            try:
                if lease is not None:
                    self.leases.release(lease)
                self.leases.forget(self.holder)
            except StoreError as exc:  # the lease then simply expires
                self.last_error = f"release failed: {exc}"
