"""The dashboard in a real headless Chromium: it loads cleanly, shows the instances, and follows
a scale-up live from the event stream without a reload.

The page-checking helpers take a base URL, so the same checks run against the in-memory fake
here and against a live ``vmscale up`` with the process provider elsewhere::

    with dashboard_page("http://127.0.0.1:8900") as (page, problems):
        wait_for_instances(page, min_ready=1)
        ...
        assert not problems
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes_control import FakeControlPlane
from vmscale.api.app import ServerHandle, create_app, serve_in_thread
from vmscale.api.auth import TokenStore
from vmscale.clock import FakeClock
from vmscale.config.schema import ApiConfig
from vmscale.metrics import ControllerMetrics

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError as exc:  # fail loudly, never skip
    raise RuntimeError(
        "playwright (python) is required for the dashboard test: pip install playwright"
    ) from exc

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@contextmanager
def dashboard_page(
    base_url: str, token: str | None = None, width: int = 1500, height: int = 1000
) -> Iterator[tuple[Page, list[str]]]:
    """Open the dashboard at ``base_url``; yield the page and a live list of console/page errors."""
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install chromium")
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on(
                "console",
                lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "requestfailed",
                lambda r: (
                    problems.append(f"request failed: {r.url} {r.failure}")
                    if "/v1/events" not in r.url
                    else None
                ),
            )  # the stream is cut when the page closes
            page.goto(base_url.rstrip("/") + "/" + (f"#token={token}" if token else ""), timeout=30_000)
            page.wait_for_selector("body[data-stream='live']", timeout=20_000)
            yield page, problems
        finally:
            browser.close()


def instance_rows(page: Page) -> dict[str, str]:
    """Instance name -> state, as the table shows them."""
    # One evaluate reads the whole table at once: counting rows and then reading row i races with
    # the page removing a drained instance in between (seen in CI as a 30 s locator timeout).
    rows: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#instances tbody tr[data-instance]')]"
        ".map(tr => [tr.dataset.instance || '', tr.dataset.state || '']))"
    )
    return rows


def wait_for_instances(
    page: Page, *, min_ready: int = 1, names: tuple[str, ...] = (), timeout_s: float = 20
) -> None:
    """Wait (polling, with a deadline) until the table shows ``min_ready`` ready rows and ``names``."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = instance_rows(page)
        ready = sum(1 for s in rows.values() if s == "ready")
        if ready >= min_ready and all(n in rows for n in names):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"dashboard shows {rows}; wanted >= {min_ready} ready and {names}")
        page.wait_for_timeout(200)


def kpi(page: Page, name: str) -> str:
    return page.locator(f"#kpi-{name}").inner_text().strip()


def wait_for_kpi(page: Page, name: str, value: str, timeout_s: float = 20) -> None:
    page.wait_for_function(
        "([id, v]) => document.getElementById(id).textContent.trim() === v",
        arg=[f"kpi-{name}", value],
        timeout=timeout_s * 1000,
    )


def save_screenshot(page: Page, name: str = "dashboard.png") -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# ----------------------------------------------------------------------------------------
def _story(control: FakeControlPlane, clock: FakeClock) -> None:
    """Five minutes of history: steady load, overload, a scale-up to 2, relief."""
    control.add_instance(cpu=12.0)
    for k in range(150):
        clock.advance(2.0)
        if k == 40:
            control.set_cpu(88.0)
        if k == 58:
            control.scale_up("cpu 88.0% > target 60.0% for 30 s")
        if k > 58:
            control.set_cpu(46.0 + (k % 7), spread=9.0)
        elif 40 < k < 58:
            control.set_cpu(85.0 + (k % 5) * 2)
        loaded = 40 <= k <= 58
        control.tick(
            latency_p95_s=(0.9 + (k % 4) * 0.05) if loaded else 0.18 + (k % 3) * 0.01,
            rps=38.0 if k >= 40 else 12.0,
        )


@pytest.fixture()
def served() -> Iterator[tuple[FakeControlPlane, FakeClock, ServerHandle]]:
    clock = FakeClock(start=time.time() - 305)
    control = FakeControlPlane(clock=clock)
    _story(control, clock)
    app = create_app(
        control,
        metrics=ControllerMetrics("web"),
        api_config=ApiConfig(bind="127.0.0.1:0"),
        tokens=TokenStore(),
        sse_ping_s=2.0,
    )
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        yield control, clock, handle
    finally:
        handle.stop()


def test_dashboard_loads_and_follows_a_scale_up(
    served: tuple[FakeControlPlane, FakeClock, ServerHandle],
) -> None:
    control, clock, handle = served
    base = f"http://127.0.0.1:{handle.port}"
    with dashboard_page(base) as (page, problems):
        wait_for_instances(page, min_ready=2, names=("web-1", "web-2"))
        assert kpi(page, "desired") == "2"
        renders_before = page.evaluate("window.vmscaleDashboard.renders")
        page.evaluate("window.__marker = 'no reload'")

        clock.advance(2.0)
        control.set_cpu(81.0, spread=6.0)
        control.tick(latency_p95_s=0.7, rps=60.0)
        control.scale_up("cpu 81.0% > target 60.0%")
        clock.advance(2.0)
        control.tick(latency_p95_s=0.3, rps=60.0)

        wait_for_instances(page, min_ready=3, names=("web-3",))
        wait_for_kpi(page, "desired", "3")
        wait_for_kpi(page, "ready", "3")
        page.wait_for_function("document.querySelectorAll('#decisions li[data-direction=up]').length >= 2")
        assert page.evaluate("window.__marker") == "no reload", "the page reloaded"
        assert page.evaluate("window.vmscaleDashboard.renders") > renders_before
        page.wait_for_timeout(1200)  # let the throttled chart redraw land before the picture
        save_screenshot(page)
        assert not problems, problems


def test_dashboard_stays_usable_with_a_hundred_instances() -> None:
    clock = FakeClock(start=time.time() - 125)
    control = FakeControlPlane(max_=120, clock=clock)
    control.desired = 100
    for k in range(100):
        control.add_instance(cpu=None)
        if k % 10 == 9:
            clock.advance(1)
    for k in range(60):
        clock.advance(2.0)
        control.set_cpu(50.0 + (k % 9), spread=0.8)
        control.tick(latency_p95_s=0.25)
    app = create_app(control, metrics=None, api_config=ApiConfig(bind="127.0.0.1:0"), tokens=TokenStore())
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        with dashboard_page(f"http://127.0.0.1:{handle.port}") as (page, problems):
            wait_for_instances(page, min_ready=100)
            scrolls = page.evaluate(
                "(() => { const w = document.querySelector('.table-wrap');"
                " return w.scrollHeight > w.clientHeight; })()"
            )
            assert scrolls, "the instance table should scroll, not push the page down"
            # The chart draws after the table: wait for its legend before counting it.
            entries = "#chart-cpu .u-legend .u-series"
            page.wait_for_selector(entries, timeout=15_000)
            legend = page.locator(entries).count()
            assert 0 < legend <= 4, f"CPU legend has {legend} entries"
            page.wait_for_timeout(1200)
            save_screenshot(page, "dashboard-100.png")
            assert not problems, problems
    finally:
        handle.stop()


def test_dashboard_with_tokens_reads_and_steers() -> None:
    from tests.fakes_control import READ_TOKEN, WRITE_TOKEN, make_api

    app, control = make_api()
    handle = serve_in_thread(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{handle.port}"
    try:
        with dashboard_page(base, token=READ_TOKEN) as (page, problems):
            wait_for_instances(page, min_ready=1, names=("web-1",))
            assert "token" not in page.url, "the token must leave the address bar"
            page.click("#btn-up")
            page.wait_for_function("document.getElementById('control-msg').textContent.includes('write')")
            assert control.writes == []
            assert all("status of 403" in p for p in problems), problems  # the refused POST, nothing else
        with dashboard_page(base, token=WRITE_TOKEN) as (page, problems):
            page.click("#btn-up")
            wait_for_kpi(page, "desired", "2")
            assert control.writes[-1][:2] == ("desired", 2) and control.writes[-1][2].startswith("write-")
            assert not problems, problems
        with sync_playwright() as pw:  # no token at all: the page asks for one instead of failing silently
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
            try:
                page = browser.new_page()
                page.goto(base + "/", timeout=30_000)
                page.wait_for_selector("#auth:not([hidden])", timeout=20_000)
            finally:
                browser.close()
    finally:
        handle.stop()


def test_a_standbys_dashboard_names_the_leader_and_its_buttons_are_refused() -> None:
    from tests.fakes_control import WRITE_TOKEN, make_api

    app, control = make_api()
    control.stand_by("http://ctl-a.example:8900")
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        with dashboard_page(f"http://127.0.0.1:{handle.port}", token=WRITE_TOKEN) as (page, problems):
            wait_for_instances(page, min_ready=1, names=("web-1",))
            meta = page.locator("#leader-meta").inner_text()
            assert "standby" in meta and "http://ctl-a.example:8900" in meta, meta
            page.click("#btn-up")
            page.wait_for_function(
                "document.getElementById('control-msg').textContent.includes('http://ctl-a.example:8900')"
            )
            assert control.writes == []
            assert all("status of 409" in p for p in problems), problems  # the refused POST, nothing else
    finally:
        handle.stop()
