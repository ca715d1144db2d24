"""The dashboard of a controller that runs two groups, in a real headless Chromium: a selector shows
the groups, the page shows one at a time (nothing of the other leaks in, live or on load), and its
buttons steer the group shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_dashboard import (
    dashboard_page,
    instance_rows,
    kpi,
    save_screenshot,
    wait_for_instances,
    wait_for_kpi,
)
from tests.fakes_control import READ_TOKEN, WRITE_TOKEN, FakeControlPlane, make_api, make_groups_api
from vmscale.api.app import serve_in_thread


@pytest.fixture()
def two() -> Iterator[tuple[str, dict[str, FakeControlPlane]]]:
    app, planes, _ = make_groups_api("web", "batch", sse_ping_s=2.0)
    planes["batch"].scale_up("inflight 9.0 > target 4.0")
    for plane in planes.values():
        plane.tick(latency_p95_s=0.2)
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{handle.port}", planes
    finally:
        handle.stop()


def selector(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(
        "#group-select option", "os => os.map(o => o.value + '|' + o.textContent)"
    )


def test_the_page_shows_one_group_and_switches_with_the_selector(two) -> None:
    base, planes = two
    with dashboard_page(base, token=WRITE_TOKEN) as (page, problems):
        wait_for_instances(page, min_ready=1, names=("web-1",))
        assert page.locator("#group-select").is_visible()
        assert selector(page) == ["web|web · 1/1 ready", "batch|batch · 2/2 ready"]
        assert page.locator("#group-name").inner_text() == "web"
        assert set(instance_rows(page)) == {"web-1"}

        # The other group scales while this one is shown: nothing of it reaches this page.
        planes["batch"].scale_up("decided for batch while web was shown")
        planes["web"].set_cpu(40.0)
        planes["web"].tick(latency_p95_s=0.2)
        page.wait_for_function("window.vmscaleDashboard.ticks.length >= 1")  # web's tick arrived
        page.wait_for_timeout(1500)  # a render or two
        assert set(instance_rows(page)) == {"web-1"} and kpi(page, "desired") == "1"
        assert "while web was shown" not in page.locator("#decisions").inner_text()

        page.select_option("#group-select", "batch")
        page.wait_for_url("**/?group=batch", timeout=20_000)
        page.wait_for_selector("body[data-stream='live']", timeout=20_000)
        wait_for_instances(page, min_ready=3, names=("batch-1", "batch-2", "batch-3"))
        assert page.locator("#group-name").inner_text() == "batch"
        assert "web-1" not in instance_rows(page)
        wait_for_kpi(page, "desired", "3")
        assert "while web was shown" in page.locator("#decisions").inner_text()

        page.click("#btn-up")  # steers the group shown
        wait_for_kpi(page, "desired", "4")
        assert planes["batch"].writes[-1][:2] == ("desired", 4) and planes["web"].writes == []

        planes["web"].scale_up("web's own scale-up")  # and live events of the other group stay out
        planes["batch"].set_desired(3, "alice")
        wait_for_kpi(page, "desired", "3")
        assert "web-2" not in instance_rows(page)
        page.wait_for_timeout(1200)
        save_screenshot(page, "dashboard-groups.png")
        assert not problems, problems


def test_a_group_named_in_the_address_is_shown_first(two) -> None:
    base, _ = two
    with dashboard_page(base, token=READ_TOKEN) as (page, problems):  # the token stays in the session
        page.goto(base + "/?group=batch", timeout=30_000)
        page.wait_for_selector("body[data-stream='live']", timeout=20_000)
        wait_for_instances(page, min_ready=2, names=("batch-1", "batch-2"))
        assert page.locator("#group-select").input_value() == "batch"
        assert not problems, problems


def test_one_group_has_no_selector() -> None:
    app, _ = make_api()
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        with dashboard_page(f"http://127.0.0.1:{handle.port}", token=READ_TOKEN) as (page, problems):
            wait_for_instances(page, min_ready=1, names=("web-1",))
            assert not page.locator("#group-select").is_visible()
            assert not problems, problems
    finally:
        handle.stop()
