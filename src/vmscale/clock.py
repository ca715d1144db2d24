"""Injected time.

Anything with a window, a cooldown or a timeout takes a ``Clock`` instead of calling
``time.time()`` itself, so tests drive it with ``FakeClock`` and never sleep.
``now()`` is wall-clock epoch seconds (decisions are logged and scheduled in it);
``monotonic()`` is for measuring durations that must not jump.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to. ``sleep`` advances it instantly.

    Both readings advance together; ``jump_wall`` moves only the wall clock, the way an NTP step or
    an operator's ``date -s`` does, so tests can check that durations do not depend on it.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = start
        self._wall_offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t + self._wall_offset

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def jump_wall(self, seconds: float) -> None:
        """Step the wall clock (either way); monotonic time does not move."""
        with self._lock:
            self._wall_offset += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._t += seconds
            return self._t + self._wall_offset
