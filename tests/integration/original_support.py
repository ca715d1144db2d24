"""A client written the way the seed experiment's client is: ``multiprocessing.connection``
listeners with an authkey, one connection per port, "VM Launching" then "VM Launched"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Listener
from typing import Any

from vmscale.ports import free_port

AUTHKEY = b"test-only authkey"


class OriginalClient:
    """What the seed client did, in its own style: two listener threads, one connection each; on
    "VM Launched" it adds the second server's URL to the servers it sends requests to: its fixed
    second-VM URL (with only the address changed), or, in the variant without one, the URL it
    receives next on the same connection."""

    def __init__(
        self, launching_port: int, launched_port: int, authkey: bytes, second_vm_url: str = ""
    ) -> None:
        self.servers = ["http://first-vm"]
        self.second_vm_url = second_vm_url
        self.heard: dict[int, list[Any]] = {launching_port: [], launched_port: []}
        self._listeners = [
            Listener(("localhost", launching_port), authkey=authkey),
            Listener(("localhost", launched_port), authkey=authkey),
        ]
        self._threads = [
            threading.Thread(target=self._launching, daemon=True),
            threading.Thread(target=self._launched, daemon=True),
        ]

    def _launching(self) -> None:
        conn = self._listeners[0].accept()
        self.heard[self._listeners[0].address[1]].append(conn.recv())
        conn.close()

    def _launched(self) -> None:
        conn = self._listeners[1].accept()
        port = self._listeners[1].address[1]
        msg = conn.recv()
        self.heard[port].append(msg)
        if msg == "VM Launched":
            url = self.second_vm_url
            if not url:  # the variant that is told the URL, in a second message
                url = conn.recv()
                self.heard[port].append(url)
            self.servers.append(url)
        conn.close()

    def start(self) -> OriginalClient:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        for listener in self._listeners:
            listener.close()


@contextmanager
def original_client(ports: tuple[int, int], **kw: Any) -> Iterator[OriginalClient]:
    client = OriginalClient(*ports, AUTHKEY, **kw).start()
    try:
        yield client
    finally:
        client.stop()


def two_ports() -> tuple[int, int]:
    a = free_port()
    b = free_port()
    while b == a:
        b = free_port()
    return a, b
