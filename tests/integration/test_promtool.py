"""`promtool check metrics` (Prometheus' own linter) accepts a live scrape of /metrics."""

from __future__ import annotations

import shutil
import subprocess

import httpx

from tests.fakes_control import READ_TOKEN, make_api
from vmscale.api.app import serve_in_thread
from vmscale.metrics import ControllerMetrics


def populated_metrics() -> ControllerMetrics:
    """Every metric with at least one labelled sample, as after a scale-up and a failure."""
    m = ControllerMetrics("web")
    for state, n in (("ready", 2), ("booting", 1), ("failed", 0)):
        m.instances.labels("web", state).set(n)
    m.desired.labels("web").set(3)
    m.actual.labels("web").set(3)
    m.metric_value.labels("web", "cpu").set(72.5)
    m.metric_value.labels("web", "latency_p95").set(0.31)
    m.instance_cpu.labels("web", "web-1").set(80.0)
    m.decisions.labels("web", "cpu-target", "up").inc()
    m.launch_seconds.labels("web").observe(0.8)
    m.terminate_seconds.labels("web").observe(0.2)
    m.time_to_ready.labels("web").observe(2.4)
    m.provider_errors.labels("web", "launch", "temporary").inc()
    m.health_failures.labels("web").inc()
    m.replacements.labels("web").inc()
    m.ticks.labels("web").inc(10)
    return m


def test_promtool_accepts_a_live_scrape() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus"
    app, _ = make_api(metrics=populated_metrics())
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        resp = httpx.get(
            f"http://127.0.0.1:{handle.port}/metrics",
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
            timeout=10,
        )
    finally:
        handle.stop()
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "vmscale_decisions_total" in resp.text and "vmscale_launch_duration_seconds_bucket" in resp.text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=resp.content, capture_output=True, timeout=30
    )
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
    assert not check.stdout.strip() and not check.stderr.strip(), (check.stdout + check.stderr).decode()


def test_grafana_queries_are_valid_promql(tmp_path) -> None:
    """Each dashboard query, with Grafana's variables filled in, passes `promtool check rules`."""
    import json
    from pathlib import Path

    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus"
    dash = json.loads(
        (Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json").read_text()
    )
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]] + [
        a["expr"] for a in dash["annotations"]["list"]
    ]
    subst = {"$group": ".*", "$__rate_interval": "1m", "$__range": "1h"}
    rules = []
    for i, e in enumerate(exprs):
        for k, v in subst.items():
            e = e.replace(k, v)
        rules.append({"record": f"vmscale:check_{i}", "expr": e})
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
