"""Where the controller's errors go: the log, the event stream and a Prometheus counter, once each.

A failing call is reported at every attempt, and every attempt is spaced by a back-off, so a long
outage costs one line per back-off step ("retrying in 8s"), never one per tick.
"""

from __future__ import annotations

import logging

from vmscale.controller.backoff import Backoff
from vmscale.errors import ProviderUnavailableError
from vmscale.event_kinds import ErrorReported
from vmscale.events import EventBus
from vmscale.metrics import ControllerMetrics

log = logging.getLogger("vmscale.controller")


class ErrorReporter:
    def __init__(self, group: str, events: EventBus, metrics: ControllerMetrics) -> None:
        self._group = group
        self._events = events
        self._metrics = metrics

    def error(self, where: str, message: str, instance: str | None = None) -> None:
        log.warning("%s: %s", where, message)
        self._events.publish(ErrorReported(where, message, instance))

    def provider_error(
        self, op: str, exc: BaseException, instance: str | None = None, retry: Backoff | None = None
    ) -> None:
        """Report a failed provider call; with ``retry``, say when (and which attempt) comes next."""
        kind = type(exc).__name__
        self._metrics.provider_errors.labels(self._group, op, kind).inc()
        msg = f"{op} failed ({kind}): {exc}"
        if retry is not None:
            msg += f"; retrying in {retry.delay_s:g}s (attempt {retry.failures + 1})"
        if isinstance(exc, ProviderUnavailableError):
            msg += "; instances already running keep serving meanwhile"
        self.error(f"provider.{op}", msg, instance)
