"""/metrics follows prometheus.io's naming practices, and a controller really sets what the
policies saw (the old ``vmscale_policy_metric_value`` was never set by a running controller)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.controller_rig import Rig
from vmscale import __version__
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.metrics import PROVIDER_ERROR_KINDS, PROVIDER_OPERATIONS, ControllerMetrics
from vmscale.model import Metric

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: ControllerMetrics) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def families(metrics: ControllerMetrics) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}


def test_names_follow_the_naming_practices() -> None:
    m = ControllerMetrics("web")
    m.set_instance_cpu("web-1", 50.0)
    m.decisions.labels("web", "cpu", "up").inc()
    for metric in Metric:
        m.observe_policy_metric(metric, 1.0)
    for name in families(m):
        if not name.startswith("vmscale_"):
            assert name.startswith(("process_", "python_")), name  # the standard collectors only
            continue
        assert "percent" not in name, f"{name}: ratios are 0..1, named _ratio"
    for family in m.registry.collect():
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
    for (name, labels), _ in scrape(m).items():
        assert "instance" not in dict(labels), f"{name} has its own 'instance' label"
        assert "metric" not in dict(labels), f"{name} mixes metrics (and units) under one name"


def test_one_gauge_per_policy_metric_with_its_unit() -> None:
    m = ControllerMetrics("web")
    m.observe_policy_metric(Metric.CPU, 72.5)  # the model's percent...
    m.observe_policy_metric(Metric.LATENCY_P95, 0.31)
    m.observe_policy_metric(Metric.RPS, 12.0)
    m.observe_policy_metric(Metric.INFLIGHT, 1.5)
    found = scrape(m)
    g = frozenset({("group", "web")})
    assert found[("vmscale_policy_cpu_ratio", g)] == pytest.approx(0.725)  # ...is exported as a ratio
    assert found[("vmscale_policy_latency_p95_seconds", g)] == pytest.approx(0.31)
    assert found[("vmscale_policy_instance_requests_per_second", g)] == pytest.approx(12.0)
    assert found[("vmscale_policy_inflight_requests_per_vcpu", g)] == pytest.approx(1.5)
    m.observe_policy_metric(Metric.LATENCY_P95, None)  # no traffic any more: no stale figure
    assert ("vmscale_policy_latency_p95_seconds", g) not in scrape(m)
    m.observe_policy_metric(Metric.LATENCY_P95, None)  # and twice is fine


def test_instance_cpu_is_a_ratio_under_instance_name_and_leaves_with_the_instance() -> None:
    m = ControllerMetrics("web")
    m.set_instance_cpu("web-1", 80.0)
    key = ("vmscale_instance_cpu_ratio", frozenset({("group", "web"), ("instance_name", "web-1")}))
    assert scrape(m)[key] == pytest.approx(0.8)
    m.forget_instance("web-1")
    m.forget_instance("web-9")  # never reported: nothing to forget, no error
    assert key not in scrape(m)


def test_build_info_and_the_standard_collectors() -> None:
    found = scrape(ControllerMetrics("web"))
    info = [dict(labels) for (name, labels), v in found.items() if name == "vmscale_build_info" and v == 1]
    assert info and info[0]["version"] == __version__ and info[0]["python_version"]
    names = {name for name, _ in found}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names


def test_series_with_known_labels_exist_at_zero_from_the_start() -> None:
    found = scrape(ControllerMetrics("web"))
    g = frozenset({("group", "web")})
    for name in (
        "vmscale_health_check_failures_total",
        "vmscale_instance_replacements_total",
        "vmscale_reconcile_ticks_total",
        "vmscale_launch_duration_seconds_count",
        "vmscale_scale_up_to_ready_seconds_count",
    ):
        assert found[(name, g)] == 0, name
    for op in PROVIDER_OPERATIONS:
        for kind in PROVIDER_ERROR_KINDS:
            labels = frozenset({("group", "web"), ("operation", op), ("kind", kind)})
            assert found[("vmscale_provider_errors_total", labels)] == 0


def test_a_running_controller_exports_what_its_policies_saw(tmp_path: Path) -> None:
    lb = FakeLoadBalancer()
    rig = Rig(tmp_path, lb=lb, policies=[{"kind": "target", "name": "cpu", "metric": "cpu", "target": 60.0}])
    rig.provider.default_cpu = 42.0
    rig.ctl.recover()
    rig.tick(3)  # launch, boot, ready
    assert rig.states() == {"web-1": "ready"}
    lb.set_figures("web-1", rate_rps=20.0, response_time_s=0.1, latency_p95_s=0.25)
    rig.health.inflight["http://127.0.0.1:20001"] = 3
    rig.tick()
    found = scrape(rig.ctl.metrics)
    g = frozenset({("group", "web")})
    assert found[("vmscale_policy_cpu_ratio", g)] == pytest.approx(0.42)
    assert found[("vmscale_policy_latency_p95_seconds", g)] == pytest.approx(0.25)  # the p95, not rtime
    assert found[("vmscale_policy_instance_requests_per_second", g)] == pytest.approx(20.0)
    assert found[("vmscale_policy_inflight_requests_per_vcpu", g)] == pytest.approx(3.0)
    cpu = ("vmscale_instance_cpu_ratio", frozenset({("group", "web"), ("instance_name", "web-1")}))
    assert found[cpu] == pytest.approx(0.42)
