"""An in-process event bus: the controller publishes, the SSE stream, the JSONL log and the
dashboard listen.

What is published is one of the typed event kinds in ``vmscale.event_kinds`` (instance transitions,
decisions, tick summaries, endpoint changes, errors); the bus stamps it with a sequence number and a
time and keeps its wire form (``Event.type``, ``Event.data``), which is what SSE clients and the
JSONL log see. ``vmscale.event_kinds.parse`` turns the wire form back into the typed value.

Publishing is thread-safe and never blocks: a subscriber that falls behind loses its oldest
events and is told so with a ``lagged`` event.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmscale.event_kinds import EventKind


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    t: float
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "t": self.t, "type": self.type, "data": self.data}


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._q: queue.Queue[Event] = queue.Queue(maxsize=maxsize)
        self.dropped = 0

    def _offer(self, ev: Event) -> None:
        try:
            self._q.put_nowait(ev)
        except queue.Full:
            try:
                self._q.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self._q.put_nowait(ev)

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, keep: int = 2000, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._recent: collections.deque[Event] = collections.deque(maxlen=keep)
        self._subs: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._clock = clock

    def publish(self, kind: EventKind) -> Event:
        data = kind.to_dict()
        with self._lock:
            ev = Event(next(self._seq), self._clock(), kind.TYPE, data)
            self._recent.append(ev)
            subs = list(self._subs)
            listeners = list(self._listeners)
        for s in subs:
            s._offer(ev)
        for fn in listeners:
            with contextlib.suppress(Exception):  # a broken listener must not stop the controller
                fn(ev)
        return ev

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn`` synchronously for every event (keep it quick: file append, counter)."""
        with self._lock:
            self._listeners.append(fn)

    def recent(self, types: Iterable[str] | None = None, limit: int = 200) -> list[Event]:
        wanted = set(types) if types is not None else None
        with self._lock:
            evs = [e for e in self._recent if wanted is None or e.type in wanted]
        return evs[-limit:]


class JsonlWriter:
    """An event listener that appends each event as one JSON line (the autoscaler log).

    Flushed per line so that ``tail -f`` and a crash both see every event written so far.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        line = json.dumps(ev.to_dict(), default=str)
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line + "\n")
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()
