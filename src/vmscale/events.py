"""An in-process event bus: the controller publishes, the SSE stream, the JSONL log and the
dashboard listen.

Event types (``Event.type``) and their ``data``:

* ``endpoints``  — ``{"endpoints": [{"name", "url"}...]}``: the full set of ready endpoints,
  published whenever it changes (clients that balance themselves replace their list with it).
* ``instance``   — ``{"name", "from", "to", "reason", "endpoint"}``: a lifecycle transition.
* ``decision``   — a ``Decision.to_dict()`` plus ``"actor"`` and ``"applied"``.
* ``tick``       — ``{"desired", "actual", "ready", "instances": {name: {"state", "cpu"}},
  "latency_p95_s", "rps"}``: one observation per reconcile interval, for live charts.
* ``error``      — ``{"where", "message", "instance"}``: provider/balancer errors, reported not fatal.

Publishing is thread-safe and never blocks: a subscriber that falls behind loses its oldest
events and is told so with a ``lagged`` event.

Every event has a sequence number (1, 2, ... per process). The bus keeps the most recent ``keep``
events, so a client that reconnects can be sent what it missed (``since``), and be told plainly
when that is no longer possible.
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


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    t: float
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "t": self.t, "type": self.type, "data": self.data}


@dataclass(frozen=True, slots=True)
class Gap:
    """What ``EventBus.since`` can give back: the missed events it kept, and whether that is all."""

    events: list[Event]
    complete: bool
    latest: int  # newest sequence number
    oldest: int  # oldest sequence number still kept (latest + 1 when none is)


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
        self._latest = 0
        self._recent: collections.deque[Event] = collections.deque(maxlen=keep)
        self._subs: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._clock = clock

    def publish(self, type_: str, data: dict[str, Any]) -> Event:
        with self._lock:
            ev = Event(next(self._seq), self._clock(), type_, data)
            self._latest = ev.seq
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

    @property
    def latest_seq(self) -> int:
        """The sequence number of the newest event (0 before the first)."""
        with self._lock:
            return self._latest

    def since(self, seq: int) -> Gap:
        """The events after ``seq`` that the buffer still holds, and whether they are all of them.

        Not complete when the oldest kept event is newer than ``seq + 1`` (the gap fell out of the
        buffer) or when ``seq`` is beyond the newest event (a number from before a restart: this
        process counts from 1 again).
        """
        with self._lock:
            latest = self._latest
            oldest = self._recent[0].seq if self._recent else latest + 1
            events = [e for e in self._recent if e.seq > seq] if seq < latest else []
        complete = seq <= latest and oldest <= seq + 1
        return Gap(events=events, complete=complete, latest=latest, oldest=oldest)

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
