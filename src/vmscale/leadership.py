"""Leadership in a running `vmscale up`: terms of leadership, and what the API serves in each role.

Every `vmscale up` runs an elector (``vmscale.leader``) on its own thread; of the controllers that
share a store and a scope, one leads and the others stand by. ``Terms`` runs on the loop thread:

    standby ──(the elector acquires the lease)──► take over: balancer, a fresh Controller fenced by
       ▲                                          this term's lease, restart recovery from the store
       │                                          and the provider (as after a crash)
       │                                                   │
       │                                                   ▼
       └──(renew deadline passed, a write fenced, ◄── reconcile (the controller's loop)
           a newer epoch seen at the provider)

Losing leadership ends the term at once: the loop stops at its next check (each action and tick
checks; the elector's callback also interrupts the wait between ticks), the term's controller is
dropped without another provider, balancer or store call (``Controller.abandon``), and the API
serves the store's view again. Nothing is terminated by a hand-over: the next leader adopts it all.
A store error in a tick ends the term the same way but keeps the lease: the next term rebuilds the
state from the store and the provider once the store answers (what was in memory may be ahead of
what was recorded).

``ControlRouter`` is the ``ControlPlane`` the API serves: the current term's controller while
leading, the store's view (``vmscale.standby``) while standing by; writes reaching a standby are
refused with the leader's address. ``LeaderView`` says who leads, from the elector's last step (no
store read) or, for ``GET /v1/controllers``, with the registry of every controller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from vmscale.control import ControllerEntry, GroupControl, GroupStatus, HostInfo, InstanceInfo, Leadership
from vmscale.controller import Controller
from vmscale.controller.backoff import Backoff
from vmscale.errors import NotLeaderError, StoreError
from vmscale.leader import Elector, Role
from vmscale.store import Lease, LeaseStore

log = logging.getLogger("vmscale.leadership")
T = TypeVar("T")


class LeaderView:
    """Who leads, as this controller knows it."""

    def __init__(self, elector: Elector, leases: LeaseStore) -> None:
        self._elector = elector
        self._leases = leases
        self.first_tick_at: float | None = None  # of the current term (set by ``Terms``)

    def __call__(self, *, full: bool = False) -> Leadership:
        e = self._elector
        leading = e.is_leader
        lease, seen = e.lease, e.leader
        if leading and lease is not None:
            leader: tuple[str, str, int | None] = (e.holder, e.address, lease.epoch)
        elif seen is not None and seen.held:
            leader = (seen.holder, seen.address, seen.epoch)
        else:
            leader = ("", "", None)
        entries: tuple[ControllerEntry, ...] = ()
        if full:  # one store read; StoreError reaches the API (503)
            entries = tuple(
                ControllerEntry(
                    c.id, c.address, c.role, c.leads, round(c.last_seen_age_s, 3), c.id == e.holder
                )
                for c in self._leases.controllers()
            )
        age = e.lease_age_s()
        return Leadership(
            scope=self._leases.scope,
            id=e.holder,
            role="leader" if leading else "standby",
            leader_id=leader[0],
            leader_address=leader[1],
            epoch=leader[2],
            lease_age_s=round(age, 3) if age is not None else None,
            first_tick_at=self.first_tick_at if leading else None,
            controllers=entries,
        )

    def refusal(self, why: str) -> NotLeaderError:
        """The error a write gets on a standby: who leads and where, or that nobody does yet."""
        who = self()
        if who.leader_id and who.leader_id != who.id:
            where = who.leader_address or "an address it did not publish (api.advertise)"
            message = f"{why}: controller {who.id} is a standby; the leader is {who.leader_id} at {where}"
        elif who.role == "leader":  # between two terms: e.g. rebuilding its state after a store error
            message = (
                f"{why}: controller {who.id} leads but is starting its term (restart recovery from the "
                "store and the provider); retry in a few seconds"
            )
        else:
            message = f"{why}: no controller leads right now; retry in a few seconds"
        return NotLeaderError(message, leader_id=who.leader_id, leader_address=who.leader_address)


class ControlRouter:
    """The ``ControlPlane`` the API serves; see the module docstring."""

    def __init__(self, standby: GroupControl, view: LeaderView, step_down: Callable[[str], None]) -> None:
        self.events = standby.events
        self._standby = standby
        self._current: GroupControl = standby
        self._view = view
        self._step_down = step_down

    def lead(self, controller: GroupControl) -> None:
        self._current = controller

    def stand_by(self) -> None:
        self._current = self._standby

    def leadership(self, *, full: bool = False) -> Leadership:
        return self._view(full=full)

    def group(self) -> GroupStatus:
        return replace(self._current.group(), leadership=self._view().brief())

    def instances(self) -> list[InstanceInfo]:
        return self._current.instances()

    def endpoints(self) -> list[dict[str, str]]:
        return self._current.endpoints()

    def history(self, since: float | None = None) -> list[dict[str, Any]]:
        return self._current.history(since)

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._current.decisions(limit)

    def hosts(self) -> list[HostInfo]:
        return self._current.hosts()

    def set_desired(self, count: int, actor: str) -> GroupStatus:
        status = self._write("set the desired count", lambda c: c.set_desired(count, actor))
        return replace(status, leadership=self._view().brief())

    def set_paused(self, paused: bool, actor: str) -> GroupStatus:
        status = self._write("pause" if paused else "resume", lambda c: c.set_paused(paused, actor))
        return replace(status, leadership=self._view().brief())

    def host_action(self, name: str, action: str, actor: str) -> HostInfo:
        return self._write(f"{action} {name}", lambda c: c.host_action(name, action, actor))

    def _write(self, what: str, fn: Callable[[GroupControl], T]) -> T:
        current = self._current
        try:
            return fn(current)
        except NotLeaderError as exc:
            if current is not self._standby:  # leadership was lost under this write: stop acting now
                self._step_down(f"{what} refused: {exc}")
            raise self._view.refusal(f"cannot {what}") from None


class Terms:
    """Runs terms of leadership on the loop thread (see the module docstring)."""

    def __init__(
        self,
        elector: Elector,
        take_over: Callable[[Lease], Controller],
        router: ControlRouter,
        view: LeaderView,
        report: Callable[[str], None],
        let_go: Callable[[], None] = lambda: None,
    ) -> None:
        """``take_over`` begins a term (balancer, fresh controller, recovery); ``let_go`` releases
        what a term took that outlives it (the balancer's receiver) when the term is dropped."""
        self._elector = elector
        self._take_over = take_over
        self._router = router
        self._view = view
        self._report = report
        self._let_go = let_go
        self._leading = threading.Event()  # the elector acquired the lease: wake the loop thread
        self._term_stop = threading.Event()  # ends the current term's reconcile loop
        retry = elector.timing.retry_s
        self._retry = Backoff(retry, max(retry, elector.timing.lease_s))
        self.controller: Controller | None = None  # the current term's, while leading

    def on_change(self, old: Role, new: Role, lease: Lease | None, why: str) -> None:
        """The elector's callback (election thread): wake up to lead, or stop acting at once."""
        if new is Role.LEADER:
            self._leading.set()
            return
        self._leading.clear()
        self._term_stop.set()
        self._router.stand_by()

    def interrupt(self) -> None:
        """The service is stopping: end the current term's loop (the service shuts the term down)."""
        self._term_stop.set()
        self._leading.set()

    def begin(self) -> bool:
        """Take over now if this controller leads: True once a term runs. Raises what taking over
        raises (start-up calls this once, synchronously, so that a failure is a start-up failure)."""
        lease = self._elector.lease
        if not self._elector.is_leader or lease is None:
            return False
        self._term_stop = threading.Event()
        self._view.first_tick_at = None
        started = time.monotonic()
        controller = self._take_over(lease)
        self.controller = controller
        self._router.lead(controller)
        took = time.monotonic() - started
        log.info("leading %s at epoch %d (took over in %.2f s)", lease.scope, lease.epoch, took)
        return True

    def run(self, stop: threading.Event) -> None:
        """Lead whenever elected, until ``stop`` is set."""
        while not stop.is_set():
            if self.controller is None and not self._try_begin(stop):
                continue
            controller = self.controller
            assert controller is not None
            try:
                controller.run(self._term_stop, fatal=(NotLeaderError, StoreError), on_tick=self._ticked)
            except NotLeaderError as exc:  # FencedError included
                self._elector.step_down(f"stopped acting: {exc}")
            except StoreError as exc:
                self._failed(f"the store failed under a tick ({exc}); rebuilding the state from it")
            if stop.is_set():
                return  # the service shuts the term down (it may still lead, and may remove instances)
            self._end_term()

    def _try_begin(self, stop: threading.Event) -> bool:
        if not self._elector.is_leader:
            self._leading.wait(self._elector.timing.retry_s)
            self._leading.clear()
            return False
        wait = self._retry.next_at - time.monotonic()
        if wait > 0:
            stop.wait(wait)
            return False
        try:
            began = self.begin()
        except NotLeaderError as exc:
            self._elector.step_down(f"could not take over: {exc}")
            return False
        except Exception as exc:  # the store, the provider or the balancer is down: back off, retry
            log.exception("taking over failed")
            self._failed(f"taking over failed ({type(exc).__name__}: {exc})")
            self._end_term()
            return False
        self._retry = self._retry.succeeded()
        return began

    def _failed(self, message: str) -> None:
        self._retry = self._retry.failed(time.monotonic())
        self._report(f"{message}; retrying in {self._retry.delay_s:g}s")

    def _ticked(self) -> None:
        if self._view.first_tick_at is None:
            self._view.first_tick_at = time.time()
            log.info("first tick as leader passed")

    def _end_term(self) -> None:
        """Drop the term's state without another call: the next term (here or elsewhere) rebuilds it."""
        controller, self.controller = self.controller, None
        self._router.stand_by()
        self._view.first_tick_at = None  # not acting until the next term has ticked
        if controller is not None:
            controller.abandon()
        self._let_go()
