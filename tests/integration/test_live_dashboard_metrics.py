"""Every metric the shipped Grafana dashboard queries carries samples on a LIVE group: the
process provider with real backends behind a real HAProxy, the autoscaler running, traffic
through the balancer, a scale-up. (The old ``vmscale_policy_metric_value`` was queried by the
dashboard and never set by a running controller; nothing noticed.)"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.live_support import (
    READY_TIMEOUT_S,
    controller_state,
    free_port,
    live_config_data,
    running_service,
)
from tests.support.wait import wait_until
from tests.unit.test_api_grafana import dashboard_exprs
from vmscale.config import parse_config
from vmscale.service import Service

MAX_REQUESTS = 5000
MAX_LOAD_S = 180.0


def queried_metrics() -> set[str]:
    """The metric names in the dashboard's PromQL (panels, annotations, variables)."""
    return {m for e in dashboard_exprs() for m in re.findall(r"\bvmscale_[a-z0-9_]+", e)}


def sampled(text: str) -> set[str]:
    """Sample names in a scrape (histograms give _bucket/_sum/_count, counters _total)."""
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


class Traffic:
    """Requests through the balancer's front door until stopped: bounded in count and time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run_step, daemon=True)

    def run_step(self) -> None:
        deadline = time.monotonic() + MAX_LOAD_S
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self._stop.is_set() and self.sent < MAX_REQUESTS and time.monotonic() < deadline:
                self.sent += 1
                # An instance joining or leaving may cut one request: the next goes elsewhere.
                with contextlib.suppress(httpx.HTTPError):
                    client.get(f"{self.url}/fib/18")

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[Service]:
    data = live_config_data(tmp_path, max_=3)
    data["lb"] = {
        "kind": "haproxy",
        "haproxy": {"bind": f"127.0.0.1:{free_port()}", "stats_bind": f"127.0.0.1:{free_port()}"},
    }
    with running_service(parse_config(data, "live dashboard config"), paused=False) as svc:
        yield svc


def test_every_metric_the_dashboard_queries_has_samples(live: Service) -> None:
    svc = live
    assert svc.lb is not None and svc.api_url is not None
    front = svc.lb.frontend_url()
    assert front is not None
    wanted = queried_metrics()
    assert {"vmscale_policy_cpu_ratio", "vmscale_policy_latency_p95_seconds"} <= wanted
    with Traffic(front) as traffic:
        svc.controller.set_desired(2, "test")  # a scale-up: launch, time to ready, a decision
        wait_until(
            lambda: svc.controller.group().ready == 2,
            "two ready instances",
            READY_TIMEOUT_S,
            state=lambda: controller_state(svc),
        )
        last: dict[str, set[str]] = {}

        def all_sampled() -> bool:
            resp = httpx.get(f"{svc.api_url}/metrics", timeout=10, trust_env=False)
            assert resp.status_code == 200, resp.text
            last["missing"] = wanted - sampled(resp.text)
            return not last["missing"]

        wait_until(
            all_sampled,
            "every metric the dashboard queries to carry samples",
            timeout_s=90,
            state=lambda: f"missing {sorted(last.get('missing', set()))} after {traffic.sent} requests",
        )
    assert traffic.sent > 0
