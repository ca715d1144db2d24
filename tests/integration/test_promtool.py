"""`promtool check metrics` (Prometheus' own linter) accepts a live scrape of /metrics."""

from __future__ import annotations

import shutil
import subprocess

import httpx

from tests.controller_story import run_story
from tests.fakes_control import READ_TOKEN, make_api
from vmscale.api.app import serve_in_thread


def test_promtool_accepts_a_live_scrape(tmp_path) -> None:
    """The metrics of a controller that went through a scale-up, a failure and a scale-in (set by
    the controller itself, see tests/controller_story.py), served by the API, pass promtool."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus"
    metrics = run_story(tmp_path).metrics
    app, _ = make_api(metrics=metrics)
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
    for name in (
        "vmscale_policy_cpu_ratio",
        "vmscale_policy_latency_p95_seconds",
        "vmscale_instance_cpu_ratio",
    ):
        assert f"\n{name}{{" in resp.text, f"the controller did not set {name}"
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
