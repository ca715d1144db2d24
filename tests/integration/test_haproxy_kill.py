"""An instance dies (kill -9) behind HAProxy under load. Clients may see errors only while
HAProxy has not yet noticed, so the count is bounded by the health-check timing; retries with
redispatch usually make it zero. A replacement added by ``sync`` then takes traffic."""

from __future__ import annotations

import math
import time

import pytest

from tests.integration.haproxy_support import (
    Backend,
    OpenLoopLoad,
    backends,
    fast_config,
    running_haproxy,
)
from tests.support.wait import wait_until

RATE_RPS = 40.0


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="defaults-retry-redispatch"),
        # Health checks alone: no retries, no passive observation. Errors do happen here, and
        # this is where the bound means something.
        pytest.param({"retries": 0, "observe_error_limit": 0}, id="health-checks-only"),
    ],
)
def test_killed_backend_costs_errors_bounded_by_health_check_timing(overrides: dict[str, object]) -> None:
    with running_haproxy(fast_config(**overrides)) as lb, backends("web-1", "web-2") as (one, two):
        config = lb.config
        url = f"{lb.frontend_url()}/fib/15"
        lb.sync({"web-1": one.server, "web-2": two.server})
        replacement = Backend("web-3")
        try:
            with OpenLoopLoad(url, RATE_RPS, duration_s=30.0) as load:
                wait_until(
                    lambda: min(load.result.servers.get(n, 0) for n in ("web-1", "web-2")) >= 5,
                    "both backends to serve before the kill",
                    15,
                )
                one.kill(9)
                wait_until(
                    lambda: lb.stats()["web-1"].state == "down",
                    "HAProxy to mark the killed server down",
                    3 * config.detection_window_s + 5,
                )
                noticed = time.monotonic()
                replacement.start()  # what the controller does next: launch, then sync
                lb.sync({"web-2": two.server, "web-3": replacement.server})
                assert set(lb.stats()) == {"web-2", "web-3"}
                wait_until(lambda: load.result.servers.get("web-3", 0) >= 5, "the replacement to serve", 15)
                load.stop()
            result = load.result
        finally:
            replacement.kill()

    # Worst case: every request sent while HAProxy had not noticed went to the dead server and
    # failed even after retries. The window is derived from the config, not measured.
    bound = math.ceil(RATE_RPS * config.detection_window_s)
    print(f"kill -9: {result.failed} failed of {result.sent} (bound {bound}); {result.failures[:3]}")
    assert result.failed <= bound, f"{result.failed} failures > bound {bound}: {result.failures[:5]}"
    late = [t for t, ok in result.timeline if not ok and t > noticed]
    assert not late, f"{len(late)} requests sent after HAProxy marked web-1 down still failed"
