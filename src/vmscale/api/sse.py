"""The ``GET /v1/events`` Server-Sent Events stream, bridged from the thread-safe EventBus.

The controller publishes from its own thread. Rather than parking one worker thread per
connected client on ``Subscription.get`` (which would exhaust the thread pool with a few dozen
dashboards), one bus listener fans each event out to per-connection ``asyncio.Queue``s via
``loop.call_soon_threadsafe``: publishing never blocks and the event loop never waits on a lock.

Wire format (shared with every client)::

    id: <seq>\\nevent: <type>\\ndata: <json of Event.to_dict()>\\n\\n

The first message is an ``endpoints`` event with the current ready endpoints; keep-alive
comments ``: ping`` follow every ``ping_s`` seconds of silence.

Reconnecting: a client that sends ``Last-Event-ID`` (EventSource does so by itself; ``vmscale
logs --follow`` does too) gets every event it missed, replayed from the bus's recent-events
buffer, then the live ones. When the gap is older than the buffer, or the id is from before a
controller restart, it gets a ``reset`` event instead, saying so and what to do (refetch the
state over REST), then the stream as a fresh client has it.
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
from vmscale.events import Event, EventBus, Gap

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


def parse_last_event_id(value: str | None) -> int | None:
    """The ``Last-Event-ID`` a reconnecting client sends (our ids are sequence numbers).

    Absent -> None (a fresh stream). Anything that is not a sequence number -> -1, which no
    buffer covers, so the client is told to refetch rather than silently resumed from nowhere.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    return int(text) if text.isdigit() and len(text) < 19 else -1


def reset_event(last_id: int, gap: Gap) -> Event:
    """Told to a client whose missed events are no longer (or never were) in the buffer."""
    if last_id > gap.latest or last_id < 0:
        why = f"event {last_id} is not from this controller's stream (it restarted, or the id is not ours)"
    else:
        why = f"the events after {last_id} are no longer kept (the oldest kept is {gap.oldest})"
    return Event(
        gap.latest,
        time.time(),
        "reset",
        {
            "reason": why,
            "last_event_id": last_id,
            "resume_from": gap.latest,
            "action": "refetch the state (GET /v1/group, /v1/instances, /v1/history), then follow the stream",
        },
    )


async def stream(
    hub: EventHub,
    endpoints: Callable[[], list[dict[str, str]]],
    types: frozenset[str] | None,
    ping_s: float,
    *,
    history: EventBus | None = None,
    last_event_id: int | None = None,
) -> AsyncIterator[str]:
    """The messages of one SSE connection, until the client leaves or the server stops.

    Fresh (no ``last_event_id``): the ready endpoints first, carrying the id of the newest event
    (the state "as of" it), then every later event. Resumed: every event after ``last_event_id``
    from ``history``'s buffer, then live ones; when the buffer no longer covers the gap, a
    ``reset`` event says so (and what to do), followed by the endpoints as a fresh stream has them.
    Either way no event is sent twice and none after the starting point is skipped.
    """
    client = hub.connect(types)  # before reading the bus, so no event can fall in between
    wanted = (lambda t: True) if types is None else (lambda t: t in types)
    try:
        # Events up to ``sent_upto`` are the client's already (or the past a fresh stream starts after).
        sent_upto = history.latest_seq if history is not None else 0
        if last_event_id is not None and history is not None:
            gap = history.since(last_event_id)
            sent_upto = gap.latest
            if gap.complete:
                for ev in gap.events:
                    if wanted(ev.type):
                        yield format_event(ev)
            else:
                yield format_event(reset_event(last_event_id, gap))
                if wanted("endpoints"):
                    yield format_event(
                        Event(gap.latest, time.time(), "endpoints", {"endpoints": endpoints()})
                    )
        elif wanted("endpoints"):
            first = Event(sent_upto, time.time(), "endpoints", {"endpoints": endpoints()})
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
            if item.seq <= sent_upto:
                continue  # already sent (replayed), or part of the state the stream started from
            if client.dropped:
                lagged = Event(item.seq, time.time(), "lagged", {"dropped": client.dropped})
                client.dropped = 0
                yield format_event(lagged)
            yield format_event(item)
    finally:
        hub.disconnect(client)
