"""An in-memory ``LeaseStore`` on an injected clock: the elector's unit tests, and a way to make
the store fail on demand (``fail_next``) without a database.

It follows the same rules as the SQL backends (``lease.py``); the store's clock is ``clock.now()``.
"""

from __future__ import annotations

import threading

from vmscale.clock import Clock
from vmscale.store import lease as rules
from vmscale.store.base import ControllerInfo, LeaderInfo, Lease, StoreUnavailableError


class MemoryLeases:
    def __init__(self, scope: str, clock: Clock) -> None:
        self.scope = scope
        self.clock = clock
        self.row: Lease | None = None
        self.calls: list[str] = []  # operation names, in order, for assertions
        self._failures = 0
        self._controllers: dict[str, tuple[str, str, float, float]] = {}  # id -> address, role, started, seen
        self._lock = threading.Lock()

    def fail_next(self, count: int = 1) -> None:
        """Make the next ``count`` operations raise ``StoreUnavailableError`` (an outage)."""
        self._failures = count

    def _enter(self, op: str) -> float:
        self.calls.append(op)
        if self._failures:
            self._failures -= 1
            raise StoreUnavailableError(f"in-memory lease store: simulated outage during {op}")
        return self.clock.now()

    def try_acquire(
        self, holder: str, ttl_s: float, *, address: str = "", replacing: str = ""
    ) -> Lease | None:
        with self._lock:
            now = self._enter("try_acquire")
            new = rules.acquire(
                self.row, self.scope, holder, ttl_s, now, address=address, replacing=replacing
            )
            if new is not None:
                self.row = new
            return new

    def renew(self, lease: Lease, ttl_s: float) -> Lease:
        with self._lock:
            now = self._enter("renew")
            self.row = rules.renew(self.row, lease, ttl_s, now)
            return self.row

    def release(self, lease: Lease) -> bool:
        with self._lock:
            now = self._enter("release")
            new = rules.release(self.row, lease, now)
            if new is not None:
                self.row = new
            return new is not None

    def current(self) -> LeaderInfo | None:
        with self._lock:
            now = self._enter("current")
            return None if self.row is None else rules.info(self.row, now)

    def heartbeat(self, controller_id: str, address: str, role: str) -> None:
        with self._lock:
            now = self._enter("heartbeat")
            started = self._controllers.get(controller_id, ("", "", now, now))[2]
            self._controllers[controller_id] = (address, role, started, now)

    def forget(self, controller_id: str) -> None:
        with self._lock:
            self._enter("forget")
            self._controllers.pop(controller_id, None)

    def controllers(self) -> list[ControllerInfo]:
        with self._lock:
            now = self._enter("controllers")
            leader = self.row.holder if self.row is not None and self.row.expires_at > now else ""
            found = [
                ControllerInfo(cid, self.scope, addr, role, started, now - seen, cid == leader)
                for cid, (addr, role, started, seen) in sorted(self._controllers.items())
            ]
            return sorted(found, key=lambda c: not c.leads)
