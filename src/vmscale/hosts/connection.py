"""A host's kept-open libvirt connection: every call bounded, its reachability watched, a lost host
retried with back-off.

``HostConnection.call`` has the signature of ``LibvirtConnection.call`` (which does the bounding and
the error translation), so the libvirt provider works over either. What it adds:

* a call while the host is in back-off fails at once with ``HostUnreachableError`` naming the
  host, the last error and when the next attempt will be made, instead of waiting for another
  timeout;
* each outcome updates the host's ``HostWatch`` (up / not answering / unreachable).

The connection itself is opened lazily and reopened by ``LibvirtConnection`` on the next allowed
call; for remote URIs libvirt's keepalive notices a dead peer (see providers/libvirt/connection.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import libvirt

from vmscale.clock import Clock, SystemClock
from vmscale.errors import HostUnreachableError, ProviderError
from vmscale.hosts.watch import HostWatch, WatchState
from vmscale.providers.libvirt.connection import LibvirtConnection

T = TypeVar("T")


class HostConnection:
    def __init__(
        self,
        name: str,
        conn: LibvirtConnection,
        watch: HostWatch,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.conn = conn
        self.watch = watch
        self.clock = clock or SystemClock()

    @property
    def uri(self) -> str:
        return self.conn.uri

    @property
    def timeout_s(self) -> float:
        return self.conn.timeout_s

    def state(self) -> WatchState:
        return self.watch.state(self.clock.monotonic())

    def call(
        self,
        what: str,
        fn: Callable[[libvirt.virConnect], T],
        *,
        instance: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        now = self.clock.monotonic()
        if not self.watch.may_try(now):
            st = self.watch.state(now)
            raise HostUnreachableError(
                f"host {self.name} is not answering ({st.last_error}); next try in {st.retry_in_s:.1f} s",
                instance=instance,
                host=self.name,
            )
        try:
            value = self.conn.call(what, fn, instance=instance, timeout_s=timeout_s)
        except HostUnreachableError as exc:
            self.watch.failed(self.clock.monotonic(), str(exc))
            exc.host = self.name
            raise
        except ProviderError:
            self.watch.answered(self.clock.monotonic())  # an error from the daemon is an answer
            raise
        self.watch.answered(self.clock.monotonic())
        return value

    def close(self) -> None:
        self.conn.close()
