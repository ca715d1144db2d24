"""Prometheus metrics of one controller, in a registry of its own (so tests can run several).

Names follow Prometheus conventions: ``vmscale_`` prefix, base units (seconds, ratios as
percent only where the name says so), ``_total`` for counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class ControllerMetrics:
    def __init__(self, group: str) -> None:
        self.group = group
        self.registry = CollectorRegistry()
        r = self.registry
        self.instances = Gauge(
            "vmscale_instances", "Instances by lifecycle state", ["group", "state"], registry=r
        )
        self.desired = Gauge("vmscale_desired_instances", "Desired instance count", ["group"], registry=r)
        self.actual = Gauge(
            "vmscale_actual_instances", "Live instances (pending, booting, ready)", ["group"], registry=r
        )
        self.metric_value = Gauge(
            "vmscale_policy_metric_value",
            "Group-level value of a metric as the policies saw it (cpu in percent, latency in seconds)",
            ["group", "metric"],
            registry=r,
        )
        self.instance_cpu = Gauge(
            "vmscale_instance_cpu_percent",
            "CPU of an instance, percent of its own vCPUs",
            ["group", "instance"],
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
