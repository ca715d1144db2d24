"""Prometheus metrics of a controller process, in a registry of its own (so tests can run several).

One registry holds every group's series: the metric families are created once (``MetricFamilies``;
prometheus_client refuses to register a name twice) and each group writes through its own
``ControllerMetrics``, which puts the ``group`` label on everything it writes.

Names follow prometheus.io's naming practices:

* a ``vmscale_`` prefix, ``_total`` for counters, base units in the name (``_seconds``) and
  ratios as 0..1 (``_ratio``), never percent;
* one unit per metric name: what the policies saw is one gauge per metric
  (``vmscale_policy_cpu_ratio``, ``vmscale_policy_latency_p95_seconds``...), not one gauge with a
  ``metric`` label mixing percent and seconds;
* no ``instance`` label of our own: Prometheus sets ``instance`` to the scrape target and would
  rename ours to ``exported_instance``. A vmscale instance is ``instance_name`` everywhere;
* series whose labels are known up front (the group; each provider operation and error kind)
  exist from the first scrape at 0, so dashboards and ``rate()`` see "nothing happened" rather
  than "no data";
* ``vmscale_build_info`` and the standard ``process_*`` / ``python_*`` collectors, as every
  Prometheus client library exports them.

The controller writes through the typed methods (``observe_policy_metric``, ``set_instance_cpu``,
``forget_instance``) where a unit or a label set must be right; counters and histograms it
updates directly.
"""

from __future__ import annotations

import contextlib
import platform

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from vmscale import __version__
from vmscale.model import Metric

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

# Provider calls the controller makes, and the error classes of vmscale.errors they raise; their
# counters exist at 0 from the start. Another kind (a bug's exception) still counts, under its name.
PROVIDER_OPERATIONS = ("launch", "terminate", "list", "sample", "pause", "resume", "resize", "prepare")
PROVIDER_ERROR_KINDS = ("TemporaryProviderError", "PermanentProviderError", "InstanceNotFoundError")

# One gauge per metric the policies read, each with its unit in its name.
_POLICY_GAUGES: dict[Metric, tuple[str, str]] = {
    Metric.CPU: (
        "vmscale_policy_cpu_ratio",
        "Mean CPU of the ready instances (0..1 of their own vCPUs), as the policies saw it",
    ),
    Metric.RPS: (
        "vmscale_policy_instance_requests_per_second",
        "Mean requests per second per ready instance, as the policies saw it",
    ),
    Metric.LATENCY_P95: (
        "vmscale_policy_latency_p95_seconds",
        "The group's p95 response time through the balancer, as the policies saw it",
    ),
    Metric.INFLIGHT: (
        "vmscale_policy_inflight_requests_per_vcpu",
        "Mean requests in progress per vCPU of the ready instances, as the policies saw it",
    ),
}


class MetricFamilies:
    """Every metric family, created once in one registry; the groups label their own series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        if GC_COLLECTOR is not None:  # CPython only
            GCCollector(registry=r)
        Info("vmscale_build", "vmscale's version (always 1)", registry=r).info(
            {"version": __version__, "python_version": platform.python_version()}
        )
        self.instances = Gauge(
            "vmscale_instances", "Instances by lifecycle state", ["group", "state"], registry=r
        )
        self.desired = Gauge("vmscale_desired_instances", "Desired instance count", ["group"], registry=r)
        self.actual = Gauge(
            "vmscale_actual_instances", "Live instances (pending, booting, ready)", ["group"], registry=r
        )
        self.policy_values = {
            metric: Gauge(name, doc, ["group"], registry=r) for metric, (name, doc) in _POLICY_GAUGES.items()
        }
        self.instance_cpu = Gauge(
            "vmscale_instance_cpu_ratio",
            "CPU of an instance, 0..1 of its own vCPUs",
            ["group", "instance_name"],
            registry=r,
        )
        self.decisions = Counter(
            "vmscale_decisions_total", "Scaling decisions", ["group", "policy", "direction"], registry=r
        )
        self.launch_seconds = Histogram(
            "vmscale_launch_duration_seconds",
            "Provider launch call duration",
            ["group"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.terminate_seconds = Histogram(
            "vmscale_terminate_duration_seconds",
            "Provider terminate call duration",
            ["group"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_ready = Histogram(
            "vmscale_scale_up_to_ready_seconds",
            "From scale-up decision to the new instance being ready",
            ["group"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.resize_to_serving = Histogram(
            "vmscale_resize_to_serving_seconds",
            "From the decision to the workload serving with the vCPUs a live resize gave it",
            ["group"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.provider_errors = Counter(
            "vmscale_provider_errors_total", "Provider errors", ["group", "operation", "kind"], registry=r
        )
        self.health_failures = Counter(
            "vmscale_health_check_failures_total", "Failed health probes", ["group"], registry=r
        )
        self.replacements = Counter(
            "vmscale_instance_replacements_total", "Instances failed and replaced", ["group"], registry=r
        )
        self.ticks = Counter(
            "vmscale_reconcile_ticks_total", "Reconcile loop iterations", ["group"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ControllerMetrics:
    """One group's view of the families: the same objects (the controller labels counters and
    histograms itself), and typed writers that put the group's label on for it."""

    def __init__(self, group: str, families: MetricFamilies | None = None) -> None:
        self.group = group
        self.families = families or MetricFamilies()
        f = self.families
        self.registry = f.registry
        self.instances, self.desired, self.actual = f.instances, f.desired, f.actual
        self.policy_values, self.instance_cpu, self.decisions = f.policy_values, f.instance_cpu, f.decisions
        self.launch_seconds, self.terminate_seconds = f.launch_seconds, f.terminate_seconds
        self.time_to_ready, self.provider_errors = f.time_to_ready, f.provider_errors
        self.resize_to_serving = f.resize_to_serving
        self.health_failures, self.replacements, self.ticks = f.health_failures, f.replacements, f.ticks
        for per_group in (
            self.launch_seconds,
            self.terminate_seconds,
            self.time_to_ready,
            self.resize_to_serving,
            self.health_failures,
            self.replacements,
            self.ticks,
        ):
            per_group.labels(group)
        for op in PROVIDER_OPERATIONS:
            for kind in PROVIDER_ERROR_KINDS:
                self.provider_errors.labels(group, op, kind)

    def observe_policy_metric(self, metric: Metric, value: float | None) -> None:
        """What the policies saw of ``metric`` at this decision, in the model's units (CPU in percent,
        converted to a ratio here). ``None`` (nothing measured) removes the series rather than leave
        a stale figure standing."""
        gauge = self.policy_values[metric]
        if value is None:
            with contextlib.suppress(KeyError):  # KeyError: no series yet
                gauge.remove(self.group)
            return
        gauge.labels(self.group).set(value / 100.0 if metric is Metric.CPU else value)

    def set_instance_cpu(self, name: str, percent: float) -> None:
        """One instance's CPU as the provider sampled it (percent of its own vCPUs) -> a 0..1 ratio."""
        self.instance_cpu.labels(self.group, name).set(percent / 100.0)

    def forget_instance(self, name: str) -> None:
        """An instance that left must not report its last CPU forever."""
        with contextlib.suppress(KeyError):  # KeyError: it never reported CPU
            self.instance_cpu.remove(self.group, name)

    def forget_group_state(self) -> None:
        """This controller stopped leading: its gauges of the group's state would go stale, so they
        leave /metrics (the leader's are the live ones); counters and histograms stay."""
        for gauge in (
            self.instances,
            self.desired,
            self.actual,
            self.instance_cpu,
            *self.policy_values.values(),
        ):
            gauge.clear()

    def render(self) -> bytes:
        return generate_latest(self.registry)
