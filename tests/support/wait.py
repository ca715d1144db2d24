"""Polling with a deadline: how tests wait for real processes, never with a bare sleep."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

# What a check may raise while the thing it looks at is still coming up (a server not listening yet,
# a half-written file, a database being migrated): the poll goes on, and the last one is reported.
TRANSIENT = (httpx.HTTPError, OSError, ValueError, sqlite3.Error)


def wait_until(
    check: Callable[[], T],
    what: str,
    timeout_s: float,
    *,
    poll_s: float = 0.05,
    state: Callable[[], Any] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy, and return that. On timeout fail naming
    ``what`` was awaited, the last value (or transient error) seen and, with ``state``, what things
    looked like at the end."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
        except TRANSIENT as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            seen = f"; state: {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r}){seen}")
        time.sleep(poll_s)
