"""The dashboard against a LIVE controller: a real ``Service`` with the process provider and real
backends, watched in headless Chromium while the group scales 1 -> 2 -> 1.

What a user is promised: the page loads without console errors, shows the real instance, and
follows a scale-up (a second instance appears and becomes ready; desired/actual/ready change)
and a scale-in (the instance leaves) live from the event stream, without a reload.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.e2e.test_dashboard import (
    dashboard_page,
    instance_rows,
    kpi,
    save_screenshot,
    wait_for_instances,
    wait_for_kpi,
)
from tests.integration.live_support import READY_TIMEOUT_S, live_config, live_config_data, running_service
from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.service import Service

UI_TIMEOUT_S = 60.0  # a new backend must start and pass its health check on a busy machine


def wait_for_rows(page: Page, names: set[str], timeout_s: float = UI_TIMEOUT_S) -> None:
    """Wait until the table shows exactly ``names`` (no more, no fewer)."""
    deadline = time.monotonic() + timeout_s
    while set(instance_rows(page)) != names:
        if time.monotonic() > deadline:
            raise AssertionError(f"dashboard shows {instance_rows(page)}; wanted exactly {sorted(names)}")
        page.wait_for_timeout(200)


def wait_for_scale_in(page: Page, svc: Service, count: int) -> None:
    """Once the controller is down to ``count`` instances (the others drained and gone), the table
    shows exactly those."""
    wait_until(
        lambda: len(svc.controller.instances()) == count,
        f"the controller to keep {count} instance(s)",
        READY_TIMEOUT_S,
    )
    wait_for_rows(page, {i.name for i in svc.controller.instances()})


class Load:
    """Real work for the backends, spread over the ready endpoints as they come and go (the way a
    client following the event stream would). Loopback only, bounded in time and count."""

    def __init__(
        self, svc: Service, n: int = 24, clients: int = 1, max_s: float = 120.0, max_requests: int = 20_000
    ) -> None:
        self.svc, self.n, self.max_requests = svc, n, max_requests
        self.deadline = time.monotonic() + max_s
        self.stop = threading.Event()
        self.sent = 0
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run_step, args=(k,), name=f"dashboard-load-{k}", daemon=True)
            for k in range(clients)
        ]

    def run_step(self, k: int) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                urls = [
                    e["url"]
                    for e in self.svc.controller.endpoints()
                    if e["url"].startswith("http://127.0.0.1:")
                ]
                with self._lock:
                    if self.sent >= self.max_requests:
                        return
                    self.sent += 1
                    turn = self.sent
                if not urls:
                    self.stop.wait(0.1)
                    continue
                with contextlib.suppress(httpx.HTTPError):  # an instance leaving mid-request
                    client.get(f"{urls[(turn + k) % len(urls)]}/fib/{self.n}")
                if k == 0:
                    self.stop.wait(0.02)  # the first client leaves a little room: a light background

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[Service]:
    with running_service(live_config(tmp_path, max_=3)) as svc:
        yield svc


def test_live_dashboard_follows_a_real_scale_up_and_scale_in(live: Service) -> None:
    svc = live
    assert svc.api_url is not None
    first, second = f"{svc.cfg.group.name}-1", f"{svc.cfg.group.name}-2"
    with Load(svc), dashboard_page(svc.api_url) as (page, problems):
        wait_for_instances(page, min_ready=1, names=(first,), timeout_s=UI_TIMEOUT_S)
        assert set(instance_rows(page)) == {first}
        endpoint = page.locator(f"tr[data-instance='{first}'] td.endpoint").inner_text()
        assert endpoint == svc.controller.instances()[0].endpoint
        wait_for_kpi(page, "desired", "1")
        wait_for_kpi(page, "actual", "1")
        assert page.locator("#paused-pill").is_visible(), "the group is paused; the page should say so"
        page.evaluate("window.__marker = 'no reload'")

        svc.controller.set_desired(2, "test")  # a real scale-up: the provider starts a backend
        wait_for_kpi(page, "desired", "2", timeout_s=UI_TIMEOUT_S)
        wait_for_instances(page, min_ready=2, names=(first, second), timeout_s=UI_TIMEOUT_S)
        wait_for_kpi(page, "actual", "2", timeout_s=UI_TIMEOUT_S)
        wait_for_kpi(page, "ready", "2", timeout_s=UI_TIMEOUT_S)
        page.wait_for_function(
            "[...document.querySelectorAll('#decisions li[data-direction=up]')]"
            ".some(li => li.textContent.includes('by test'))",
            timeout=UI_TIMEOUT_S * 1000,
        )
        page.wait_for_function(  # the CPU bar of the new instance shows a live figure
            f"document.querySelector(\"tr[data-instance='{second}'] .pct\")?.textContent.endsWith('%')",
            timeout=UI_TIMEOUT_S * 1000,
        )
        assert page.evaluate("window.__marker") == "no reload", "the page reloaded during the scale-up"
        page.wait_for_timeout(3000)  # not a condition: a stretch at two instances, for the picture

        svc.controller.set_desired(1, "test")  # scale-in: one instance drains and leaves
        wait_for_kpi(page, "desired", "1", timeout_s=UI_TIMEOUT_S)
        wait_for_scale_in(page, svc, 1)
        wait_for_kpi(page, "actual", "1", timeout_s=UI_TIMEOUT_S)
        wait_for_kpi(page, "ready", "1", timeout_s=UI_TIMEOUT_S)
        assert page.locator("#decisions li[data-direction=down]").count() >= 1
        decisions = page.locator("#decisions").inner_text()
        assert "paused" in decisions and "?" not in decisions, decisions  # the pause reads as one
        assert page.evaluate("window.__marker") == "no reload", "the page reloaded during the scale-in"

        page.wait_for_timeout(2500)  # let the throttled chart redraw land before the picture
        save_screenshot(page, "dashboard-live.png")
        assert kpi(page, "desired") == "1"
        assert not problems, problems


def test_live_dashboard_shows_the_autoscaler_react_to_real_load(tmp_path: Path) -> None:
    """No hand on the wheel: real load overloads the one instance, the CPU-target policy scales up,
    the load ends, it scales back in. The page shows each step as it happens."""
    data = live_config_data(tmp_path, max_=2)
    data["policies"][0].update(target=30.0, down_stabilization_s=6.0)
    cfg = parse_config(data)
    with running_service(cfg, paused=False) as svc:
        assert svc.api_url is not None
        second = f"{cfg.group.name}-2"
        with dashboard_page(svc.api_url) as (page, problems):
            wait_for_instances(page, min_ready=1, timeout_s=UI_TIMEOUT_S)
            page.evaluate("window.__marker = 'no reload'")
            with Load(svc, n=29, clients=3, max_s=150):
                page.wait_for_function(  # the policy's own decision, shown with its reason
                    "[...document.querySelectorAll('#decisions li[data-direction=up]')]"
                    ".some(li => li.textContent.includes('cpu-target'))",
                    timeout=150_000,
                )
                wait_for_instances(page, min_ready=2, names=(second,), timeout_s=UI_TIMEOUT_S)
                wait_for_kpi(page, "ready", "2", timeout_s=UI_TIMEOUT_S)
                page.wait_for_timeout(4000)  # not a condition: both serving a while, for the picture
            page.wait_for_function(
                "[...document.querySelectorAll('#decisions li[data-direction=down]')]"
                ".some(li => li.textContent.includes('cpu-target'))",
                timeout=120_000,
            )
            wait_for_kpi(page, "actual", "1", timeout_s=UI_TIMEOUT_S)
            wait_for_scale_in(page, svc, 1)
            assert page.evaluate("window.__marker") == "no reload", "the page reloaded"
            page.wait_for_timeout(2500)
            save_screenshot(page, "dashboard-live-load.png")
            assert not problems, problems
