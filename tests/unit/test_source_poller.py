"""Reading metric sources off the controller's thread: ``poll`` never waits, at most one read per
source is in flight, a slow answer turns stale (no data, so the policies hold), failures are
events when they start, change and end, and ``gather`` shapes it all for the snapshot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import pytest

from vmscale.clock import FakeClock
from vmscale.controller.executor import InlineExecutor
from vmscale.event_kinds import EventKind
from vmscale.metrics_sources import MetricSourceStatus, Reading, SourcePoller, gather
from vmscale.model import Sample


class ManualExecutor(Executor):
    """Calls run only when the test says (``run_all``): a read that has not answered yet."""

    def __init__(self) -> None:
        self.pending: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self.pending.append((fut, fn, args))
        return fut

    def run_all(self) -> None:
        pending, self.pending = self.pending, []
        for fut, fn, args in pending:
            fut.set_result(fn(*args))


class ScriptedSource:
    """Answers from a script: a value, a failure note, or an exception (a source bug)."""

    def __init__(self, clock: FakeClock, metric: str = "queue", per_instance: bool = False) -> None:
        self.metric = metric
        self.per_instance = per_instance
        self.timeout_s = 2.0
        self.stale_after_s = 10.0
        self.clock = clock
        self.answers: list[Any] = []
        self.calls: list[list[str]] = []

    def read(self, instances: Sequence[str]) -> Reading:
        self.calls.append(list(instances))
        answer = self.answers.pop(0)
        now = self.clock.now()
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, str):
            return Reading(self.metric, now, self.per_instance, note=answer, failed=True)
        if self.per_instance:
            return Reading(self.metric, now, True, instances=answer)
        return Reading(self.metric, now, False, group=answer)

    def close(self) -> None:
        pass


def test_a_fast_answer_is_used_in_the_same_tick() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock)
    src.answers = [12.0]
    poller = SourcePoller([src], InlineExecutor(), clock)
    ext = poller.poll(["web-1"])
    assert dict(ext.group) == {"queue": 12.0} and not ext.notes
    sample = ext.group_sample(clock.now())
    assert sample is not None and sample.extra == {"queue": 12.0}
    assert src.calls == [["web-1"]]


def test_poll_never_waits_and_keeps_one_read_in_flight() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock)
    src.answers = [5.0, 6.0]
    ex = ManualExecutor()
    poller = SourcePoller([src], ex, clock)
    ext = poller.poll(["web-1"])
    assert "queue" in ext.notes and "no answer yet" in ext.notes["queue"]
    clock.advance(1)
    poller.poll(["web-1", "web-2"])
    assert len(ex.pending) == 1, "a second read was started while the first is still running"
    ex.run_all()  # the first read answers
    clock.advance(1)
    ext = poller.poll(["web-1", "web-2"])  # collects it and starts the next one
    assert dict(ext.group) == {"queue": 5.0}
    assert len(ex.pending) == 1 and ex.pending[0][2] == (["web-1", "web-2"],)


def test_a_read_that_hangs_turns_stale_and_the_metric_has_no_data() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock)
    src.answers = [5.0, 6.0]
    ex = ManualExecutor()
    poller = SourcePoller([src], ex, clock)
    poller.poll([])
    ex.run_all()
    poller.poll([])  # collects 5.0; a second read starts and hangs
    clock.advance(9)
    assert dict(poller.poll([]).group) == {"queue": 5.0}
    clock.advance(2)  # 11 s after the answer, stale_after_s = 10
    ext = poller.poll([])
    assert not ext.group
    assert ext.notes["queue"] == "newest value is 11 s old (stale_after_s=10); the query is still running"


def test_failures_are_events_when_they_start_change_and_end() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock)
    src.answers = [
        "cannot reach Prometheus",
        "cannot reach Prometheus",
        "Prometheus rejected the query",
        3.0,
        4.0,
    ]
    seen: list[EventKind] = []
    poller = SourcePoller([src], InlineExecutor(), clock, publish=seen.append)
    notes = []
    for _ in range(5):
        notes.append(poller.poll([]).notes.get("queue"))
        clock.advance(1)
    assert notes[:3] == [
        "cannot reach Prometheus",
        "cannot reach Prometheus",
        "Prometheus rejected the query",
    ]
    assert notes[3:] == [None, None]
    assert seen == [
        MetricSourceStatus("queue", "failing", error="cannot reach Prometheus"),
        MetricSourceStatus("queue", "failing", error="Prometheus rejected the query"),
        MetricSourceStatus("queue", "recovered", failed_for_s=3.0),
    ]
    assert seen[0].to_dict() == {
        "metric": "queue",
        "status": "failing",
        "error": "cannot reach Prometheus",
        "failed_for_s": 0.0,
    }
    assert seen[0].TYPE == "metric_source"


def test_a_source_that_raises_is_reported_not_fatal() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock)
    src.answers = [RuntimeError("bug")]
    seen: list[EventKind] = []
    ext = SourcePoller([src], InlineExecutor(), clock, publish=seen.append).poll([])
    assert ext.notes["queue"] == "source error: bug"
    assert seen == [MetricSourceStatus("queue", "failing", error="source error: bug")]


def test_gather_shapes_readings_for_the_snapshot() -> None:
    t = 1_700_000_000.0
    ext = gather(
        [
            Reading("q", t, True, instances={"web-1": 1.0, "web-2": 2.0}, note="no series for web-3"),
            Reading("lag", t, False, group=7.0),
            Reading("errors", t, False, note="Prometheus rejected the query", failed=True),
            Reading("empty", t, True, note="query returned no series"),
        ]
    )
    assert ext.instance_extra("web-1") == {"q": 1.0} and ext.instance_extra("web-3") == {}
    assert ext.group_sample(t) == Sample(t, extra={"lag": 7.0})
    assert dict(ext.notes) == {"errors": "Prometheus rejected the query", "empty": "query returned no series"}


@pytest.mark.parametrize("per_instance", [False, True])
def test_two_sources_are_independent(per_instance: bool) -> None:
    clock = FakeClock()
    a, b = ScriptedSource(clock, "a", per_instance), ScriptedSource(clock, "b")
    a.answers = [{"web-1": 1.0} if per_instance else 1.0]
    b.answers = ["down"]
    ext = SourcePoller([a, b], InlineExecutor(), clock).poll(["web-1"])
    assert ext.notes == {"b": "down"}
    assert (ext.instance_extra("web-1") if per_instance else ext.group) == {"a": 1.0}
