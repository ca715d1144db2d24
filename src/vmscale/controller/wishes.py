"""What operators want of each host: cordoned (nothing new placed there) or draining (its instances
moved off by live migration). ``HostWishes`` owns these wishes.

A wish is recorded in the store first, then applied to the inventory (whose flags placement, the
drain and consolidation plans read), then announced. The store row is what a restarted controller
loads (``load``), so a cordon or a drain in progress survives a restart; a host with no row keeps
what the config says (``[[cluster.hosts]] cordoned``).

The API thread sets wishes while the loop thread reads them: the rows are swapped under a small
lock, and the inventory's two flags per host are plain booleans.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

from vmscale.clock import Clock
from vmscale.controller.host_events import HostChanged
from vmscale.controller.records import StoreRecorder
from vmscale.event_kinds import Publish
from vmscale.hosts.role import Inventory
from vmscale.store import HostWishRow

log = logging.getLogger("vmscale.controller")

Action = Literal["cordon", "uncordon", "drain"]
ACTIONS: tuple[Action, ...] = ("cordon", "uncordon", "drain")
CONTROLLER = "controller"  # the actor of the wishes the controller itself changes (a drain's end)


class HostWishes:
    def __init__(self, inventory: Inventory, recorder: StoreRecorder, publish: Publish, clock: Clock) -> None:
        self._inventory = inventory
        self._recorder = recorder
        self._publish = publish
        self._clock = clock
        self._rows: dict[str, HostWishRow] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """The recorded wishes (restart recovery); a row for a host no longer configured is ignored."""
        names = set(self._inventory.names())
        for row in self._recorder.host_wishes():
            if row.host not in names:
                log.info("host %s has a recorded wish but is not configured any more: ignored", row.host)
                continue
            self._inventory.set_flags(row.host, cordoned=row.cordoned, draining=row.draining)
            with self._lock:
                self._rows[row.host] = row

    def get(self, host: str) -> HostWishRow | None:
        with self._lock:
            return self._rows.get(host)

    def draining(self) -> list[str]:
        with self._lock:
            return sorted(h for h, row in self._rows.items() if row.draining)

    def set(self, host: str, action: Action, actor: str) -> HostWishRow:
        """An operator's wish. LookupError for a host that is not configured."""
        names = self._inventory.names()
        if host not in names:
            raise LookupError(f"unknown host {host!r}; the hosts are: {', '.join(names)}")
        if action == "uncordon":
            row = self._write(host, False, False, actor, "")
            self._publish(
                HostChanged(host, "uncordoned", f"{host} uncordoned by {actor}: placement may use it", actor)
            )
        elif action == "cordon":
            was = self.get(host)
            row = self._write(host, True, bool(was and was.draining), actor, "")
            self._publish(
                HostChanged(
                    host, "cordoned", f"{host} cordoned by {actor}: nothing new is placed there", actor
                )
            )
        else:
            row = self._write(host, True, True, actor, "")
            self._publish(
                HostChanged(
                    host,
                    "drain-started",
                    f"drain of {host} asked by {actor}: its instances move to other hosts by live "
                    "migration, one at a time",
                    actor,
                )
            )
        return row

    def drained(self, host: str, message: str, stayed: tuple[str, ...] = ()) -> None:
        """The drain of ``host`` is over (``stayed`` could not move): it stays cordoned."""
        self._write(host, True, False, CONTROLLER, message)
        self._publish(HostChanged(host, "drain-done", message, CONTROLLER, stayed=stayed))

    def _write(self, host: str, cordoned: bool, draining: bool, actor: str, reason: str) -> HostWishRow:
        row = HostWishRow(host, cordoned, draining, actor, reason, self._clock.now())
        self._recorder.put_host_wish(row)  # recorded first: a crash after it still knows the wish
        self._inventory.set_flags(host, cordoned=cordoned, draining=draining)
        with self._lock:
            self._rows[host] = row
        return row
