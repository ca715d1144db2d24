"""The ``GET /v1/events`` Server-Sent Events stream, bridged from the thread-safe EventBus.

The controller publishes from its own thread. Rather than parking one worker thread per
connected client on ``Subscription.get`` (which would exhaust the thread pool with a few dozen
dashboards), one bus listener fans each event out to per-connection ``asyncio.Queue``s via
``loop.call_soon_threadsafe``: publishing never blocks and the event loop never waits on a lock.

Wire format (shared with every client)::

    id: <seq>\\nevent: <type>\\ndata: <json of Event.to_dict()>\\n\\n

The first message is an ``endpoints`` event with the current ready endpoints; keep-alive
comments ``: ping`` follow every ``ping_s`` seconds of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from vmscale.api.jsonsafe import finite
from vmscale.events import Event

_CLOSE = object()  # sentinel: the server is shutting down


class _Client:
    def __init__(self, loop: asyncio.AbstractEventLoop, types: frozenset[str] | None, maxsize: int) -> None:
        self.loop = loop
        self.types = types
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, item: Any) -> None:
        """Runs on the event loop. A slow client loses its oldest events, never blocks others."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
            self.queue.put_nowait(item)


class EventHub:
    """One listener on the bus, many SSE clients."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._queue_size = queue_size
        self.closed = False

    def on_event(self, ev: Event) -> None:
        """Bus listener (controller thread): hand the event to each client's loop, never block."""
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            if c.types is not None and ev.type not in c.types:
                continue
            with contextlib.suppress(RuntimeError):  # that client's loop is already closed
                c.loop.call_soon_threadsafe(c.offer, ev)

    def connect(self, types: frozenset[str] | None) -> _Client:
        client = _Client(asyncio.get_running_loop(), types, self._queue_size)
        with self._lock:
            self._clients.add(client)
        return client

    def disconnect(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)

    def close(self) -> None:
        """End every open stream so that the server can shut down promptly."""
        self.closed = True
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            with contextlib.suppress(RuntimeError):
                c.loop.call_soon_threadsafe(c.offer, _CLOSE)

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)


def format_event(ev: Event) -> str:
    data = json.dumps(finite(ev.to_dict()), separators=(",", ":"))
    return f"id: {ev.seq}\nevent: {ev.type}\ndata: {data}\n\n"


async def stream(
    hub: EventHub,
    endpoints: Callable[[], list[dict[str, str]]],
    types: frozenset[str] | None,
    ping_s: float,
) -> AsyncIterator[str]:
    """The messages of one SSE connection, until the client leaves or the server stops."""
    client = hub.connect(types)  # before reading endpoints, so no change can fall in between
    try:
        if types is None or "endpoints" in types:
            first = Event(0, time.time(), "endpoints", {"endpoints": endpoints()})
            yield format_event(first)
        else:
            yield ": connected\n\n"  # flush headers so the client knows the stream is open
        while not hub.closed:
            try:
                item = await asyncio.wait_for(client.queue.get(), timeout=ping_s)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if item is _CLOSE:
                return
            if client.dropped:
                lagged = Event(item.seq, time.time(), "lagged", {"dropped": client.dropped})
                client.dropped = 0
                yield format_event(lagged)
            yield format_event(item)
    finally:
        hub.disconnect(client)
