"""Loss-free membership changes: under constant open-loop load through HAProxy's front address,
adding a server and draining + removing one cost zero failed requests — as counted by our own
httpx load generator and, independently, by wrk running at the same time."""

from __future__ import annotations

import time

from tests.integration.haproxy_support import (
    Backend,
    OpenLoopLoad,
    Wrk,
    backends,
    running_haproxy,
)
from tests.support.wait import wait_until
from vmscale.lb.haproxy import HaproxyLoadBalancer

RATE_RPS = 40.0
PATH = "/fib/15"


def drain_and_remove(lb: HaproxyLoadBalancer, name: str, timeout_s: float = 20.0) -> None:
    """What the controller does at scale-in: drain, wait for sessions to reach 0, delete."""
    lb.drain(name)
    wait_until(lambda: lb.stats()[name].sessions_current == 0, f"{name} to drain", timeout_s)
    lb.remove(name)


def test_scale_up_and_scale_in_under_load_lose_no_request() -> None:
    with running_haproxy() as lb, backends("web-1", "web-2") as (one, two):
        url = f"{lb.frontend_url()}{PATH}"
        lb.sync({"web-1": one.server})
        wrk = Wrk(url, duration_s=9, connections=2, delay_ms=25)
        try:
            with OpenLoopLoad(url, RATE_RPS, duration_s=12.0) as load:
                time.sleep(1.5)  # steady state on one server
                lb.add(two.server)  # scale up
                wait_until(lambda: load.result.servers.get("web-2", 0) >= 10, "web-2 to take requests", 10)
                drain_and_remove(lb, "web-1")  # scale in
                at_removal = load.result.servers.get("web-1", 0)
                one.kill()  # the instance is terminated only after it left the balancer
                time.sleep(2.0)  # keep loading: nothing may still be routed to web-1
            ours = load.result
        finally:
            theirs = wrk.result()

    assert ours.sent >= RATE_RPS * 3, f"the load generator sent too little to mean anything: {ours.sent}"
    assert ours.failed == 0, f"{ours.failed} of {ours.sent} requests failed: {ours.failures[:5]}"
    assert ours.ok == ours.sent
    assert ours.servers["web-1"] > 0 and ours.servers["web-2"] > 0
    assert ours.servers["web-1"] == at_removal, "a request reached web-1 after it was removed"
    assert theirs.requests > 0, theirs.text
    assert theirs.failed == 0, f"wrk saw failures:\n{theirs.text}"


def test_twenty_quick_cycles_lose_no_request() -> None:
    """Repeated add → drain → remove of a second server while the first carries the load."""
    with running_haproxy() as lb, backends("web-1") as (one,):
        extra = Backend("web-2").start()
        try:
            url = f"{lb.frontend_url()}{PATH}"
            lb.sync({"web-1": one.server})
            with OpenLoopLoad(url, RATE_RPS, duration_s=60.0) as load:
                for _ in range(20):
                    lb.add(extra.server)
                    time.sleep(0.2)
                    drain_and_remove(lb, "web-2")
                load.stop()
            result = load.result
        finally:
            extra.kill()
    assert result.sent > 0
    assert result.failed == 0, f"{result.failed} of {result.sent} failed: {result.failures[:5]}"
    assert result.servers.get("web-2", 0) > 0, "the cycled server never took a request"
