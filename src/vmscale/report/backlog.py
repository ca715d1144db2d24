"""When the backlog left by the overload was worked off, measured from the client log alone.

While the new instance boots, requests keep arriving faster than the old instances serve them,
so they pile up. Once it serves, the pile drains; requests sent during the drain still wait
behind it, so latency can *rise* after the scale-up before it falls. To tell "the scale-up did
not help" from "the scale-up is still paying off the backlog", the summary reports when the
backlog was gone, how long that took, and the latency from then on.

The backlog is read from the number of requests outstanding (sent, not yet answered) at each
moment. Without a queue, Little's law says that number is about the send rate times the service
time: λ·s. The service time ``s`` is the 10th percentile of the high phase's latencies (the
overload's first requests met an empty queue, and the calm phase may send lighter requests);
the rate ``λ`` is what the client sent over the last ``RATE_WINDOW_S``. The backlog counts as
drained at the first moment after the new instance's first answer when at most ``2·λ·s + 1``
requests are outstanding: twice the queue-free figure plus one covers the ordinary queueing of a
busy but sufficient group, and is far below a real backlog (tens of requests). The search runs to
the end of the log, so a backlog that outlasts the high load is reported as drained after it (or
as never drained).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vmscale.percentile import percentile

STEP_S = 0.1  # resolution of the outstanding-requests series
RATE_WINDOW_S = 2.0  # the send rate is measured over this much of the recent past
HEADROOM = 2.0  # outstanding up to HEADROOM·λ·s + 1 is ordinary queueing, not a backlog


@dataclass(frozen=True, slots=True)
class Drain:
    """The backlog from ``start`` (the new instance's first answer) on."""

    start: float
    peak: int  # most requests outstanding from ``start`` until the drain
    service_s: float  # the queue-free latency the threshold is built on
    drained_at: float | None  # None: still outstanding when the log ends

    @property
    def drain_s(self) -> float | None:
        return None if self.drained_at is None else self.drained_at - self.start


def outstanding_at(requests: Sequence[dict[str, Any]], times: Sequence[float]) -> list[int]:
    """How many requests were sent and not yet answered (or failed) at each of ``times``."""
    sends = sorted(float(r["t_send"]) for r in requests)
    ends = sorted(float(r["t_send"]) + _duration(r) for r in requests)
    return [bisect.bisect_right(sends, t) - bisect.bisect_right(ends, t) for t in times]


def _duration(r: dict[str, Any]) -> float:
    lat = r.get("latency_s")
    return float(lat) if isinstance(lat, int | float) and not isinstance(lat, bool) else 0.0


def service_time(ok_latencies_high: Sequence[float], ok_latencies_all: Sequence[float]) -> float | None:
    """The latency of a request of the high load that did not queue: the 10th percentile of the high
    phase's answers (its first requests met an empty queue), else of every answer."""
    return percentile(ok_latencies_high or ok_latencies_all, 10)


def find_drain(
    requests: Sequence[dict[str, Any]], start: float, end: float, service_s: float
) -> Drain | None:
    """The drain after ``start`` (the new instance's first answer) up to ``end`` (the log's end)."""
    steps = int((end - start) / STEP_S) + 1
    if steps < 1:
        return None
    sends = sorted(float(r["t_send"]) for r in requests)
    times = [start + i * STEP_S for i in range(steps)]
    counts = outstanding_at(requests, times)
    peak = 0
    for t, count in zip(times, counts, strict=True):
        peak = max(peak, count)
        recent = bisect.bisect_right(sends, t) - bisect.bisect_right(sends, t - RATE_WINDOW_S)
        rate = recent / RATE_WINDOW_S
        if count <= HEADROOM * rate * service_s + 1:
            return Drain(start=start, peak=peak, service_s=service_s, drained_at=t)
    return Drain(start=start, peak=peak, service_s=service_s, drained_at=None)


def drain_view(drain: Drain | None, run_start: float, high_end: float | None) -> dict[str, Any] | None:
    """The drain as summary.json shows it."""
    if drain is None:
        return None
    at = drain.drained_at
    return {
        "from_rel_s": round(drain.start - run_start, 3),
        "service_s": round(drain.service_s, 6),
        "peak_outstanding": drain.peak,
        "drained_rel_s": None if at is None else round(at - run_start, 3),
        "drain_s": None if drain.drain_s is None else round(drain.drain_s, 3),
        # drained only once the high load had ended (the idle phase worked it off)
        "after_high_load": at is None or (high_end is not None and at >= high_end),
        "never_drained": at is None,
    }
