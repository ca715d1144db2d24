"""External metric sources: values from outside the instances (a Prometheus query today) that any
policy can name in its ``metric``.

    poller = SourcePoller(build_sources(cfg.metrics), executor, clock, bus_publisher(events))
    ext = poller.poll(ready_names)                  # once per full tick; never waits
    Sample(t, cpu=..., extra=ext.instance_extra(name))
    Snapshot(..., group_samples=(*others, ext.group_sample(t)), metric_notes=ext.notes)

Modules: ``base`` (the ``MetricSource`` role, ``Reading``, ``gather``), ``prometheus`` (PromQL
instant queries), ``poller`` (reads off the controller's thread, staleness, status events).
"""

from __future__ import annotations

from collections.abc import Sequence

from vmscale.clock import Clock
from vmscale.config.metrics import MetricSourceConfig
from vmscale.metrics_sources.base import ExternalMetrics, MetricSource, MetricSourceStatus, Reading, gather
from vmscale.metrics_sources.poller import SourcePoller
from vmscale.metrics_sources.prometheus import PrometheusSource

__all__ = [
    "ExternalMetrics",
    "MetricSource",
    "MetricSourceStatus",
    "PrometheusSource",
    "Reading",
    "SourcePoller",
    "build_sources",
    "gather",
]


def build_sources(configs: Sequence[MetricSourceConfig], clock: Clock | None = None) -> list[MetricSource]:
    """One source per ``[[metrics]]`` entry."""
    return [PrometheusSource(c, clock=clock) for c in configs]
