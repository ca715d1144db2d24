"""A user's own service scales out and in on a Prometheus query (issue 14's "done when").

Everything is real and on loopback: the service is a small HTTP server the test writes (not
vmscale's backend, which it never runs); the metric is a job backlog that a queue exporter publishes
and a real Prometheus server (Debian's ``prometheus``) scrapes; vmscale's policy is a ``target`` on
that query. When the backlog grows, the group grows; when it empties, the group shrinks back to its
minimum; when Prometheus cannot answer, nothing is scaled in.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.live_support import READY_TIMEOUT_S, controller_state, free_base_port, free_port
from tests.support.wait import wait_until
from vmscale.bench.prometheus import GaugeExporter, PrometheusServer
from vmscale.config import parse_config
from vmscale.service import Service

# The user's service: a health endpoint answering 204, and a page saying who answered.
SERVICE = """\
import http.server, json, sys

PORT, NAME = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ready":
            self.send_response(204)
            self.end_headers()
            return
        body = json.dumps({"served_by": NAME}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"""
SCALE_S = 90.0  # a scrape (1 s) + a poll + a decision + launches of small processes, on a busy host


@pytest.fixture
def queue_and_prometheus(tmp_path: Path) -> Iterator[tuple[GaugeExporter, PrometheusServer]]:
    """The job queue's exporter, and a Prometheus server scraping it (found through a file_sd file)."""
    sd = tmp_path / "queue-sd.json"
    with GaugeExporter() as queue:
        queue.set("jobs_waiting", 0)
        sd.write_text(json.dumps([{"targets": [queue.url.removeprefix("http://")], "labels": {"job": "q"}}]))
        with PrometheusServer(tmp_path / "prometheus", file_sd=[sd]) as prom:
            wait_until(lambda: prom.active_targets(), "Prometheus to find the queue exporter", 60, poll_s=0.5)
            yield queue, prom


def test_a_group_of_the_users_own_service_follows_a_prometheus_query(
    tmp_path: Path, queue_and_prometheus: tuple[GaugeExporter, PrometheusServer]
) -> None:
    queue, prom = queue_and_prometheus
    (tmp_path / "service.py").write_text(SERVICE)
    group = "ps" + uuid.uuid4().hex[:6]
    cfg = parse_config(
        {
            "group": {"name": group, "min": 1, "max": 3, "interval_s": 0.5},
            "provider": {
                "kind": "process",
                "process": {
                    "command": [sys.executable, str(tmp_path / "service.py"), "{port}", "{name}"],
                    "base_port": free_base_port(4),
                    "cpu_limit": "workers",
                },
            },
            "health": {"path": "/ready", "expected_status": 204, "timeout_s": 2.0, "boot_timeout_s": 30},
            "metrics": {
                "prometheus": [
                    {"name": "backlog", "url": prom.url, "query": "sum(jobs_waiting)", "timeout_s": 2.0}
                ]
            },
            # Each instance works off about 10 jobs: desired = ceil(ready * backlog / 10).
            "policies": [{"kind": "target", "metric": "backlog", "target": 10, "down_stabilization_s": 0}],
            "drain": {"timeout_s": 5, "grace_s": 0.2},
            "api": {"bind": f"127.0.0.1:{free_port()}"},
            "state": {"dir": str(tmp_path / "state")},
        },
        "own service on prometheus",
    )
    svc = Service(cfg)
    svc.start()
    try:
        state = lambda: controller_state(svc)  # noqa: E731
        wait_until(
            lambda: svc.controller.group().ready == 1, "the first instance", READY_TIMEOUT_S, state=state
        )
        queue.set("jobs_waiting", 30)  # three instances' worth of work
        wait_until(lambda: svc.controller.group().ready == 3, "a scale-out to 3", SCALE_S, state=state)
        decision = svc.controller.group().last_decision
        assert decision is not None and decision["direction"] == "up" and decision["policy"] == "target"
        assert "backlog" in decision["reason"], decision
        served = {
            httpx.get(i.endpoint, timeout=5, trust_env=False).json()["served_by"]
            for i in svc.controller.instances()
        }
        assert served == {i.name for i in svc.controller.instances()}, "the user's own service answers"

        outage = time.time()
        prom.stop()  # the metric's source goes away: hold, never scale in on missing data
        wait_until(
            lambda: any(e.data.get("status") == "failing" for e in svc.events.recent(["metric_source"])),
            "the controller to notice that Prometheus is gone",
            SCALE_S,
            state=state,
        )
        assert svc.controller.group().desired == 3
        prom.start()
        wait_until(lambda: prom.active_targets(), "Prometheus back and scraping", 60, poll_s=0.5)
        during = [d for d in svc.controller.decisions(100) if d["t"] >= outage and d["direction"] == "down"]
        assert during == [], f"scaled in while the metric had no data: {during}"

        queue.set("jobs_waiting", 0)
        wait_until(
            lambda: svc.controller.group().desired == 1 and len(svc.controller.instances()) == 1,
            "a scale-in back to 1",
            SCALE_S,
            state=state,
        )
    finally:
        svc.stop(terminate=True)
