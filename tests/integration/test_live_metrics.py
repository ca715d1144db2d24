"""`/metrics` of a LIVE controller (process provider, real backends) after a scale-up and a
scale-in: Prometheus' own linter accepts it, and the figures say what really happened."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.live_support import (
    READY_TIMEOUT_S,
    live_config,
    running_service,
    scale_and_wait,
    stop_and_check,
)
from tests.support.wait import wait_until
from vmscale.api.auth import Scope, TokenStore
from vmscale.service import Service

FAMILIES = (
    "vmscale_instances",
    "vmscale_desired_instances",
    "vmscale_actual_instances",
    "vmscale_decisions",
    "vmscale_launch_duration_seconds",
    "vmscale_terminate_duration_seconds",
    "vmscale_scale_up_to_ready_seconds",
    "vmscale_instance_cpu_ratio",
    "vmscale_build_info",
    "vmscale_reconcile_ticks",
)
# The standard collectors every Prometheus client exports (process_cpu_seconds_total, python_info).
STANDARD = ("process_cpu_seconds", "process_resident_memory_bytes", "python_info")


def scrape(svc: Service) -> httpx.Response:
    resp = httpx.get(f"{svc.api_url}/metrics", timeout=10, trust_env=False)
    assert resp.status_code == 200, resp.text
    return resp


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value for every sample of the scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in found, f"no sample {name}{labels} in the scrape"
    return found[key]


@pytest.fixture(scope="module")
def after_up_and_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """A live group that went 1 -> 2 -> 1, and its scrape once the gauges have caught up."""
    cfg = live_config(tmp_path_factory.mktemp("metrics"))
    group = cfg.group.name
    with running_service(cfg) as svc:
        scale_and_wait(svc, 2)
        # both have reported CPU, so whichever leaves has a CPU series to take with it
        wait_until(
            lambda: all(i.cpu is not None for i in svc.controller.instances()),
            "CPU samples of both",
            READY_TIMEOUT_S,
        )
        scale_and_wait(svc, 1)

        def settled() -> str | None:
            text = scrape(svc).text
            found = samples(text)
            ready = found.get(("vmscale_instances", frozenset({("group", group), ("state", "ready")})))
            leaving = sum(
                found.get(("vmscale_instances", frozenset({("group", group), ("state", s)})), 0.0)
                for s in ("draining", "terminating")
            )
            return text if ready == 1 and leaving == 0 else None

        text = wait_until(settled, "the gauges to show one ready instance and none leaving", 30)
        yield svc, text


def test_promtool_accepts_the_live_scrape(after_up_and_in: tuple[Service, str]) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus"
    svc, _ = after_up_and_in
    resp = scrape(svc)  # a fresh scrape, exactly the bytes Prometheus would read
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=resp.content, capture_output=True, timeout=30
    )
    report = (check.stdout + check.stderr).decode()
    assert check.returncode == 0, report
    assert not report.strip(), f"promtool has remarks: {report}"


def test_the_expected_families_are_there(after_up_and_in: tuple[Service, str]) -> None:
    _, text = after_up_and_in
    names = {f.name for f in text_string_to_metric_families(text)}
    missing = [f for f in (*FAMILIES, *STANDARD) if f not in names]
    assert not missing, f"missing metric families {missing}; the scrape has {sorted(names)}"
    ours = [n for n in names if not n.startswith(("process_", "python_"))]
    assert all(n.startswith("vmscale_") for n in ours), sorted(names)


def test_the_figures_tell_the_story_of_the_run(after_up_and_in: tuple[Service, str]) -> None:
    svc, text = after_up_and_in
    g = svc.cfg.group.name
    found = samples(text)
    assert value(found, "vmscale_desired_instances", group=g) == 1
    assert value(found, "vmscale_actual_instances", group=g) == 1
    assert value(found, "vmscale_instances", group=g, state="ready") == 1
    for state in ("pending", "booting", "draining", "terminating", "failed"):
        assert value(found, "vmscale_instances", group=g, state=state) == 0, state
    # the manual scale-up and scale-in, counted by the policy that made them
    assert value(found, "vmscale_decisions_total", group=g, policy="manual", direction="up") == 1
    assert value(found, "vmscale_decisions_total", group=g, policy="manual", direction="down") == 1
    # two launches (the first instance and the scale-up), one termination, one scale-up made ready
    launches = value(found, "vmscale_launch_duration_seconds_count", group=g)
    assert launches >= 2
    assert value(found, "vmscale_launch_duration_seconds_bucket", group=g, le="+Inf") == launches
    assert value(found, "vmscale_launch_duration_seconds_sum", group=g) > 0
    assert value(found, "vmscale_terminate_duration_seconds_count", group=g) >= 1
    to_ready = value(found, "vmscale_scale_up_to_ready_seconds_count", group=g)
    assert to_ready >= 1
    assert value(found, "vmscale_scale_up_to_ready_seconds_sum", group=g) > 0
    assert value(found, "vmscale_reconcile_ticks_total", group=g) > 0
    cpus = instance_cpus(found)
    survivor = svc.controller.instances()[0].name
    assert survivor in cpus and 0 <= cpus[survivor] <= 1, cpus  # a ratio of its vCPUs
    errors = {k: v for k, v in found.items() if k[0] == "vmscale_provider_errors_total" and v}
    assert not errors, f"the run had provider errors: {errors}"


def instance_cpus(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
    return {
        dict(labels)["instance_name"]: v
        for (name, labels), v in found.items()
        if name == "vmscale_instance_cpu_ratio"
    }


def test_an_instance_that_left_no_longer_reports_cpu(after_up_and_in: tuple[Service, str]) -> None:
    svc, text = after_up_and_in
    cpus = instance_cpus(samples(text))
    survivors = {i.name for i in svc.controller.instances()}
    assert set(cpus) == survivors, f"a terminated instance still reports CPU: {cpus}"


def test_metrics_need_the_read_token_when_tokens_are_set(tmp_path: Path) -> None:
    """With tokens configured, an anonymous scrape is refused (401), a read token is let in."""
    cfg = live_config(tmp_path)
    token = "metrics-reader-token-0123456789"
    svc = Service(cfg, tokens=TokenStore([(Scope.READ, token, "prometheus")]))
    try:
        svc.start()
        url = f"{svc.api_url}/metrics"
        assert httpx.get(url, timeout=10, trust_env=False).status_code == 401
        ok = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10, trust_env=False)
        assert ok.status_code == 200 and "vmscale_desired_instances" in ok.text
    finally:
        stop_and_check(svc)
