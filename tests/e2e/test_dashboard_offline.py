"""In a real Chromium: the dashboard and the /docs page load every file from the vmscale server
itself (no CDN: many data centres, and CI here, have no internet), and the dashboard rides out a
dropped event stream by resuming it (Last-Event-ID) instead of reloading its state."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, sync_playwright

from tests.e2e.test_dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    dashboard_page,
    save_screenshot,
    wait_for_instances,
    wait_for_kpi,
)
from tests.fakes_control import FakeControlPlane
from vmscale.api.app import create_app, serve_in_thread
from vmscale.api.auth import TokenStore
from vmscale.config.schema import ApiConfig
from vmscale.metrics import ControllerMetrics


def serve(control: FakeControlPlane, port: int = 0):  # type: ignore[no-untyped-def]
    app = create_app(
        control,
        metrics=ControllerMetrics("web"),
        api_config=ApiConfig(bind="127.0.0.1:0"),
        tokens=TokenStore(),
    )
    return serve_in_thread(app, "127.0.0.1", port)


def foreign(requests: list[str], port: int) -> list[str]:
    """Requests that went anywhere but this server (data: URLs are inline, not requests out)."""
    out = []
    for url in requests:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob"):
            continue
        if (parts.hostname, parts.port) != ("127.0.0.1", port):
            out.append(url)
    return out


def test_docs_page_renders_with_no_external_request() -> None:
    control = FakeControlPlane()
    control.add_instance()
    handle = serve(control)
    port = handle.port
    seen: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                page.on("request", lambda r: seen.append(r.url))
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{handle.port}/docs", timeout=30_000)
                # Swagger UI rendered the schema: the operations are there, by path.
                page.wait_for_selector(".opblock-summary-path", timeout=30_000)
                paths = page.locator(".opblock-summary-path").all_inner_texts()
                assert any("/v1/group" in p for p in paths), paths
                assert any("/v1/events" in p for p in paths), paths
                save_screenshot(page, "docs.png")
                assert not errors, errors
            finally:
                browser.close()
    finally:
        handle.stop()
    assert any(u.endswith("/openapi.json") for u in seen), seen
    assert any("swagger-ui-bundle.js" in u for u in seen), seen
    assert foreign(seen, port) == []


def test_dashboard_loads_nothing_from_elsewhere_and_resumes_its_stream() -> None:
    control = FakeControlPlane()
    control.add_instance(cpu=30.0)
    control.tick(latency_p95_s=0.2)
    handle = serve(control)
    port = handle.port
    seen: list[str] = []
    try:
        with dashboard_page(f"http://127.0.0.1:{port}") as (page, problems):
            page.on("request", lambda r: seen.append(r.url))  # from here on
            wait_for_instances(page, min_ready=1, names=("web-1",))
            page.wait_for_selector("#chart-count canvas", timeout=15_000)  # uPlot drew
            assert foreign(loaded_resources(page), port) == []  # everything the page loaded so far
            page.evaluate("window.__marker = 'no reload'")

            handle.stop()  # the API goes away: the page says so and EventSource retries...
            page.wait_for_selector("body[data-stream='error']", timeout=20_000)
            control.scale_up("decided while the page was cut off")  # ...while things happen
            control.tick(latency_p95_s=0.4)
            handle = serve(control, port)  # back on the same address

            page.wait_for_selector("body[data-stream='live']", timeout=30_000)
            wait_for_instances(page, min_ready=2, names=("web-1", "web-2"), timeout_s=30)
            wait_for_kpi(page, "desired", "2")
            page.wait_for_function(
                "document.getElementById('decisions').textContent.includes('while the page was cut off')",
                timeout=20_000,
            )
            assert page.evaluate("window.__marker") == "no reload", "the page reloaded"
            assert page.evaluate("window.vmscaleDashboard.resets") == 0
            # The gap came from the replay, not from fetching history and decisions again.
            assert _count(seen, "/v1/history") + _count(seen, "/v1/decisions") == 0
            assert foreign(seen + loaded_resources(page), port) == []
            problems[:] = [p for p in problems if "ERR_CONNECTION_REFUSED" not in p]  # the outage itself
            assert not problems, problems
    finally:
        handle.stop()


def _count(urls: list[str], path: str) -> int:
    return sum(1 for u in urls if urlsplit(u).path == path)


def loaded_resources(page: Page) -> list[str]:
    """Every URL the page has loaded (scripts, styles, fetches, the event stream), from the start."""
    urls: list[str] = page.evaluate(
        "[location.href, ...performance.getEntriesByType('resource').map(e => e.name)]"
    )
    return urls


def test_a_restarted_controller_makes_the_page_reload_its_state() -> None:
    """After a restart the event numbers start again: the server says "reset" and the page reloads."""
    first = FakeControlPlane()
    first.add_instance()
    for _ in range(30):
        first.tick()
    handle = serve(first)
    port = handle.port
    try:
        with dashboard_page(f"http://127.0.0.1:{port}") as (page, problems):
            wait_for_instances(page, min_ready=1, names=("web-1",))
            handle.stop()
            page.wait_for_selector("body[data-stream='error']", timeout=20_000)
            restarted = FakeControlPlane()  # a new process: its own numbering, its own state
            restarted.add_instance()
            restarted.add_instance()
            handle = serve(restarted, port)
            page.wait_for_function("window.vmscaleDashboard.resets >= 1", timeout=30_000)
            wait_for_instances(page, min_ready=2, names=("web-1", "web-2"), timeout_s=30)
            problems[:] = [p for p in problems if "ERR_CONNECTION_REFUSED" not in p]  # the outage itself
            assert not problems, problems
    finally:
        handle.stop()
