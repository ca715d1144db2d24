"""Reading the metric sources without ever holding up a tick.

A Prometheus that hangs must not delay health checks or scale-in of a group, so the controller
never calls ``source.read`` itself. Once per full tick it calls ``poll``, which

1. starts a read of every source that has none running (on the executor, with the instance
   names of that moment),
2. collects every read that has finished since, and
3. returns the newest answers shaped for the snapshot (``ExternalMetrics``), at once.

A source whose newest answer is older than its ``stale_after_s`` (its read is still running, the
server stopped answering) has no data: the snapshot gets a note and the policies hold. Failures
are published as ``MetricSourceStatus`` events when they start, change or end, not every tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future

from vmscale.clock import Clock
from vmscale.event_kinds import Publish, discard
from vmscale.metrics_sources.base import ExternalMetrics, MetricSource, MetricSourceStatus, Reading, gather


class SourcePoller:
    def __init__(
        self,
        sources: Sequence[MetricSource],
        executor: Executor,
        clock: Clock,
        publish: Publish = discard,
    ) -> None:
        self.sources = list(sources)
        self._executor = executor
        self._clock = clock
        self._publish = publish
        self._running: dict[str, Future[Reading]] = {}
        self._started_at: dict[str, float] = {}
        self.latest: dict[str, Reading] = {}  # newest finished reading per metric
        self._failing_since: dict[str, float] = {}
        self._last_error: dict[str, str] = {}

    def poll(self, instances: Sequence[str]) -> ExternalMetrics:
        """Start what is due, collect what finished, return the tick's values. Never waits."""
        names = list(instances)
        for src in self.sources:
            fut = self._running.get(src.metric)
            if fut is not None and fut.done():
                del self._running[src.metric]
                self._finished(src, fut)
            if src.metric not in self._running:
                self._started_at[src.metric] = self._clock.now()
                self._running[src.metric] = self._executor.submit(src.read, names)
                fut = self._running[src.metric]
                if fut.done():  # an inline executor (tests) or a very fast answer
                    del self._running[src.metric]
                    self._finished(src, fut)
        return gather(self._current(src) for src in self.sources)

    def close(self) -> None:
        for src in self.sources:
            src.close()

    def _finished(self, src: MetricSource, fut: Future[Reading]) -> None:
        exc = fut.exception()
        if exc is not None:  # a source bug; sources are meant to return, never raise
            reading = Reading(
                src.metric, self._clock.now(), src.per_instance, note=f"source error: {exc}", failed=True
            )
        else:
            reading = fut.result()
        self.latest[src.metric] = reading
        self._report(reading)

    def _current(self, src: MetricSource) -> Reading:
        now = self._clock.now()
        reading = self.latest.get(src.metric)
        if reading is None:
            waited = now - self._started_at.get(src.metric, now)
            return Reading(src.metric, now, src.per_instance, note=f"no answer yet (waited {waited:.1f} s)")
        age = now - reading.t
        if age > src.stale_after_s:
            return Reading(
                src.metric,
                now,
                src.per_instance,
                note=f"newest value is {age:.0f} s old (stale_after_s={src.stale_after_s:g}); "
                "the query is still running",
            )
        return reading

    def _report(self, reading: Reading) -> None:
        metric = reading.metric
        if reading.failed:
            if metric not in self._failing_since:
                self._failing_since[metric] = reading.t
            if self._last_error.get(metric) != reading.note:
                self._last_error[metric] = reading.note
                self._publish(MetricSourceStatus(metric, "failing", error=reading.note))
        elif metric in self._failing_since:
            since = self._failing_since.pop(metric)
            self._last_error.pop(metric, None)
            self._publish(MetricSourceStatus(metric, "recovered", failed_for_s=round(reading.t - since, 3)))
