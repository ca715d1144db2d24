"""An in-process event bus: the controller publishes, the SSE stream, the JSONL log and the
dashboard listen.

What is published is one of the typed event kinds in ``vmscale.event_kinds`` (instance transitions,
decisions, tick summaries, endpoint changes, errors); the bus stamps it with a sequence number and a
time and keeps its wire form (``Event.type``, ``Event.data``), which is what SSE clients and the
JSONL log see. ``vmscale.event_kinds.parse`` turns the wire form back into the typed value.

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
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging.handlers import RotatingFileHandler
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

    def publish(self, kind: EventKind) -> Event:
        data = kind.to_dict()
        with self._lock:
            ev = Event(next(self._seq), self._clock(), kind.TYPE, data)
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


AUTOSCALER_LOG = "autoscaler.jsonl"  # every event, ticks included: the full recent stream
DECISIONS_LOG = "decisions.jsonl"  # everything but ticks: decisions, instance changes, errors


class JsonlWriter:
    """An event listener that appends each event as one JSON line (the autoscaler log).

    Flushed per line so that ``tail -f`` and a crash both see every event written so far. With
    ``max_bytes`` the file is rotated by size (``NAME.1`` .. ``NAME.<backups>``, oldest dropped) by
    the standard library's ``RotatingFileHandler``. ``only``/``exclude`` pick event types.

    Why two files: ``autoscaler.jsonl`` gains a tick line every interval, so it must rotate; the
    decisions and state changes in it must not be lost when it does. ``vmscale up`` therefore also
    writes everything but ticks to ``decisions.jsonl``, which is small and rotates rarely. Readers
    of the full stream (the report, ``tail -f``) keep one file of everything recent; the report
    adds the older decisions from ``decisions.jsonl`` (``vmscale.report.logs``).
    """

    def __init__(
        self,
        path: Path,
        *,
        only: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        max_bytes: int = 0,
        backups: int = 0,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._only = frozenset(only) if only is not None else None
        self._exclude = frozenset(exclude)
        self._handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._closed = False

    def __call__(self, ev: Event) -> None:
        if ev.type in self._exclude or (self._only is not None and ev.type not in self._only):
            return
        line = json.dumps(ev.to_dict(), default=str)
        if not self._closed:  # a closed FileHandler would reopen its file on the next write
            self._handler.handle(logging.makeLogRecord({"msg": line}))

    def close(self) -> None:
        self._closed = True
        self._handler.close()
