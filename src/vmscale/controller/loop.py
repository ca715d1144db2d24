"""When the loop ticks: full ticks on the interval, fast ticks in between when something is moving.

A *full* tick (observe, sample, decide, act) runs every ``interval_s``, so policies see one sample
per interval whatever else happens (the threshold rule counts samples). Between full ticks the loop
wakes for *fast* ticks (collect, probe, act; no sampling, no decision) when a provider call finishes
or a person changes the desired count, and polls every ``FAST_POLL_S`` while an instance boots or
drains: a resumed warm instance serves within milliseconds of the decision instead of at the next
interval. ``next_full_at`` and ``wake_at`` are the whole schedule, as pure functions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from vmscale.clock import Clock

FAST_POLL_S = 0.1  # how often booting and draining instances are re-checked between full ticks

log = logging.getLogger("vmscale.controller")


def next_full_at(previous: float, interval_s: float, now: float) -> float:
    """The next full tick after one that was due at ``previous``: on the grid, but a tick that ran
    long does not cause a burst of catch-up ticks."""
    return max(previous + interval_s, now)


def wake_at(now: float, next_full: float, interval_s: float, *, transitional: bool) -> float:
    """When to tick next if nothing wakes the loop earlier."""
    if transitional:
        return min(next_full, now + min(FAST_POLL_S, interval_s))
    return next_full


def run_loop(
    tick: Callable[[bool], None],
    transitional: Callable[[], bool],
    on_error: Callable[[BaseException], None],
    clock: Clock,
    interval_s: float,
    stop: threading.Event,
    wake: threading.Event,
    *,
    fatal: tuple[type[BaseException], ...] = (),
    after_tick: Callable[[], None] = lambda: None,
) -> None:
    """Tick until ``stop`` is set. An exception in a tick is reported, never fatal, except the
    ``fatal`` kinds: they end the loop and reach the caller (leadership lost, the store gone)."""
    next_full = clock.monotonic()
    while not stop.is_set():
        wake.clear()
        full = clock.monotonic() >= next_full
        try:
            tick(full)
        except fatal:
            raise
        except Exception as exc:  # keep the loop alive; the error is visible in the log and events
            log.exception("tick failed")
            on_error(exc)
        else:
            after_tick()
        now = clock.monotonic()
        if full:
            next_full = next_full_at(next_full, interval_s, now)
        until = wake_at(now, next_full, interval_s, transitional=transitional())
        while not stop.is_set() and not wake.is_set():
            left = until - clock.monotonic()
            if left <= 0:
                break
            wake.wait(min(left, 0.1))
