"""Leadership in Prometheus: ``vmscale_leader`` (1 while this controller leads, else 0) and the age
of the scope's lease, read from the elector at scrape time.

A collector rather than gauges set on role changes: ``is_leader`` reads the clock, so a leader past
its renew deadline scrapes as 0 at once, even before its election thread has stepped it down.
Every controller of a scope exports both; ``max by (scope) (vmscale_leader)`` is 1 while someone
leads, and a lease age growing past the lease duration means nobody renews it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vmscale.leader.elector import Elector


class LeadershipCollector(Collector):
    def __init__(self, elector: Elector, scope: str) -> None:
        self._elector = elector
        self._scope = scope

    def collect(self) -> Iterator[Metric]:
        leader = GaugeMetricFamily(
            "vmscale_leader",
            "1 while this controller leads its scope (acting), else 0",
            labels=["scope", "controller"],
        )
        leader.add_metric([self._scope, self._elector.holder], 1.0 if self._elector.is_leader else 0.0)
        yield leader
        age = GaugeMetricFamily(
            "vmscale_leader_lease_age_seconds",
            "Seconds since the scope's lease was last renewed, as this controller knows it "
            "(absent while nobody holds it)",
            labels=["scope"],
        )
        seconds = self._elector.lease_age_s()
        if seconds is not None:
            age.add_metric([self._scope], seconds)
        yield age
