"""One lock per instance name: calls for different instances run in parallel (the controller's
worker pool launches several at once), two calls for the same instance never do."""

from __future__ import annotations

import threading


class KeyedLock:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, key: str) -> threading.Lock:
        """The lock of ``key`` (``with locks(name): ...``)."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())
