"""The controller driving a real HAProxy (issue 6), end to end with real backend processes.

The LB-level tests (test_haproxy_*.py) call the balancer by hand; here nothing does but the
controller: a ``Service`` with the process provider and ``lb = "haproxy"``, automatic decisions
paused and the count moved with ``set_desired``, while clients talk only to HAProxy's front
address. What a user is promised:

* scale-up 1 -> 2 and scale-in 2 -> 1 lose no request (our open-loop httpx client and wrk agree),
  the scaled-in backend is gone, and HAProxy's server list is exactly the ready instances;
* an instance killed with SIGKILL is replaced, HAProxy serves the replacement, and the errors in
  the gap are bounded by the health-check timing;
* a killed HAProxy is restarted by the reconcile loop with the whole server list;
* a vmscale restart in the middle of a drain adopts the running HAProxy and finishes the drain.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.haproxy_support import OpenLoopLoad, Wrk, WrkResult, free_port, short_state_dir
from tests.integration.live_support import (
    READY_TIMEOUT_S,
    backend_processes,
    kill_backends,
    live_config_data,
    running_service,
)
from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.config.schema import VmscaleConfig
from vmscale.errors import LoadBalancerError
from vmscale.lb.haproxy import HaproxyLoadBalancer
from vmscale.service import Service

RATE_RPS = 30.0
PATH = "/fib/15"
HEAVY_PATH, HEAVY_MAX = "/fib/33", 12  # a few tenths of a second each, queued on one worker
LOAD_LIMIT_S = 150  # every load client stops by itself after this, whatever happens


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with short_state_dir("vmscale-ch-") as path:
        yield path


def haproxy_group_config(state_dir: Path, **haproxy: object) -> VmscaleConfig:
    """The live test group (1 instance, max 3) behind an HAProxy on free loopback ports with fast
    health checks: a silent server is marked down within ``detection_window_s`` (2.5 s)."""
    data = live_config_data(state_dir, max_=3)
    data["template"]["fib_max_n"] = 35  # room for the slow requests
    data["drain"] = {"timeout_s": 60.0, "grace_s": 0.2}  # a drain ends because requests finished
    data["lb"] = {
        "kind": "haproxy",
        "haproxy": {
            "bind": f"127.0.0.1:{free_port()}",
            "stats_bind": f"127.0.0.1:{free_port()}",
            "check_inter_s": 0.5,
            "check_timeout_s": 0.5,
            "check_rise": 1,
            "check_fall": 2,
            **haproxy,
        },
    }
    return parse_config(data, "controller + haproxy test config")


def balancer(svc: Service) -> HaproxyLoadBalancer:
    assert isinstance(svc.lb, HaproxyLoadBalancer), f"expected the HAProxy balancer, got {svc.lb!r}"
    return svc.lb


def ready_names(svc: Service) -> set[str]:
    return {i.name for i in svc.controller.instances() if i.state == "ready"}


def haproxy_servers(svc: Service) -> set[str]:
    """HAProxy's own server list, from the runtime API's ``show servers state``."""
    return set(balancer(svc).api.servers_state(svc.cfg.group.name))


def settled(svc: Service, count: int) -> bool:
    """Exactly ``count`` instances exist, all ready, and HAProxy has exactly those as servers."""
    if not (svc.controller.group().ready == count and len(svc.controller.instances()) == count):
        return False
    try:
        return haproxy_servers(svc) == ready_names(svc)
    except LoadBalancerError:  # HAProxy (re)starting: not settled yet
        return False


def scale_to(svc: Service, count: int) -> None:
    svc.controller.set_desired(count, "test")
    wait_until(
        lambda: settled(svc, count), f"{count} ready instance(s), exactly those in HAProxy", READY_TIMEOUT_S
    )


def pid_of(svc: Service, name: str) -> int:
    info = next(i for i in svc.controller.instances() if i.name == name)
    return int(info.details["pid"])


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop_wrk(wrk: Wrk) -> WrkResult:
    """End wrk early with SIGINT: it stops and still prints its summary (SIGKILL would not)."""
    if wrk.proc.poll() is None:
        wrk.proc.send_signal(signal.SIGINT)
    return wrk.result()


def record_transitions(svc: Service) -> list[dict[str, Any]]:
    """Every instance transition vmscale publishes from now on (name, from, to, reason, t)."""
    seen: list[dict[str, Any]] = []
    svc.events.add_listener(lambda ev: seen.append({**ev.data, "t": ev.t}) if ev.type == "instance" else None)
    return seen


def heavy_request(url: str) -> tuple[int, str | None, float]:
    """One slow request through HAProxy: (status, answering server, wall time it ended)."""
    try:
        r = httpx.get(url, timeout=60, trust_env=False)
        server = r.json().get("server") if r.status_code == 200 else None
        return r.status_code, server, time.time()
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}", time.time()


def fib_inflight(svc: Service) -> dict[str, int]:
    """Fib requests each instance is computing, from its own /healthz (read directly, not via HAProxy)."""
    out = {}
    for inst in svc.controller.instances():
        if inst.endpoint:
            body = httpx.get(f"{inst.endpoint}/healthz", timeout=5, trust_env=False).json()
            out[inst.name] = int(body.get("inflight", 0))
    return out


def keep_both_busy(
    svc: Service, pool: ThreadPoolExecutor, url: str
) -> list[Future[tuple[int, str | None, float]]]:
    """Send slow requests through HAProxy until every instance is computing one (bounded).

    A backend's in-flight count includes the light load's requests (a millisecond each), so one
    look can catch a light request and call an instance busy that has no slow one: every instance
    must look busy on three looks in a row, with at least as many slow requests unfinished as there
    are instances.
    """
    sent: list[Future[tuple[int, str | None, float]]] = []
    looks = [0]

    def both_busy() -> bool:
        instances = len(svc.controller.instances())
        running = len([f for f in sent if not f.done()])
        if len(sent) < HEAVY_MAX and running < 2 * instances:
            sent.append(pool.submit(heavy_request, url))
        busy = running >= instances and all(n >= 1 for n in fib_inflight(svc).values())
        looks[0] = looks[0] + 1 if busy else 0
        return looks[0] >= 3

    wait_until(both_busy, "slow requests in flight on every instance", timeout_s=60)
    return sent


def test_scale_up_and_scale_in_through_haproxy_lose_no_request(state_dir: Path) -> None:
    cfg = haproxy_group_config(state_dir)
    with running_service(cfg) as svc:
        transitions = record_transitions(svc)
        front = balancer(svc).frontend_url()
        url = f"{front}{PATH}"
        wait_until(lambda: settled(svc, 1), "one ready instance, in HAProxy", READY_TIMEOUT_S)
        (first,) = ready_names(svc)
        wrk = Wrk(url, duration_s=LOAD_LIMIT_S, connections=2, delay_ms=25)
        pool = ThreadPoolExecutor(HEAVY_MAX)
        try:
            with OpenLoopLoad(url, RATE_RPS, duration_s=LOAD_LIMIT_S) as load:
                wait_until(
                    lambda: load.result.ok >= RATE_RPS, "steady traffic through HAProxy", READY_TIMEOUT_S
                )
                scale_to(svc, 2)  # scale-up
                (second,) = ready_names(svc) - {first}
                wait_until(
                    lambda: load.result.servers.get(second, 0) >= 10,
                    f"{second} to take requests",
                    READY_TIMEOUT_S,
                )
                pids = {name: pid_of(svc, name) for name in (first, second)}

                # Slow requests on both, so whichever instance leaves has some in flight when its
                # drain starts: vmscale must wait for them, not cut them off.
                heavy = keep_both_busy(svc, pool, f"{front}{HEAVY_PATH}")
                scale_to(svc, 1)  # scale-in: drain, wait for 0 sessions, delete, terminate
                (kept,) = ready_names(svc)
                (gone,) = {first, second} - {kept}
                at_removal, ok_at_removal = load.result.servers.get(gone, 0), load.result.ok
                # keep loading: nothing may still be routed to the instance that left
                wait_until(
                    lambda: load.result.ok >= ok_at_removal + 2 * RATE_RPS,
                    "traffic after scale-in",
                    READY_TIMEOUT_S,
                )
                ours = load.stop()
            slow = [f.result(timeout=60) for f in heavy]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            theirs = stop_wrk(wrk)
        servers_now = haproxy_servers(svc)
        leftovers = [p.pid for p in backend_processes(cfg.group.name) if p.pid == pids[gone]]
    drain_t = [t["t"] for t in transitions if t["name"] == gone and t["to"] == "draining"]
    why = [t["reason"] for t in transitions if t["name"] == gone and t["to"] == "terminating"]
    finished_in_drain = [end for status, server, end in slow if server == gone and end > min(drain_t or [0])]

    print(f"ours: {ours.sent} sent, {ours.failed} failed, per server {ours.servers}")
    print(f"heavy: {[(status, server) for status, server, _ in slow]}")
    print(f"wrk: {theirs.requests} requests, {theirs.failed} failed; {gone} left: {why}")
    assert ours.sent >= RATE_RPS * 3, f"the load generator sent too little to mean anything: {ours.sent}"
    assert ours.failed == 0, f"{ours.failed} of {ours.sent} requests failed: {ours.failures[:5]}"
    assert ours.ok == ours.sent
    assert all(status == 200 for status, _, _ in slow), f"slow requests failed: {slow}"
    assert finished_in_drain, f"no slow request on {gone} was still running when its drain began"
    assert ours.servers.get(first, 0) > 0 and ours.servers.get(second, 0) > 0
    assert ours.servers.get(gone, 0) == at_removal, f"a request reached {gone} after it was scaled in"
    assert why and why[0].startswith("drained"), f"{gone} was not drained before termination: {why}"
    assert process_gone(pids[gone]) and leftovers == [], f"the scaled-in {gone} still runs"
    assert servers_now == {kept}, f"HAProxy has servers {servers_now}, vmscale has ready {kept}"
    assert theirs.requests > 0, theirs.text
    assert theirs.failed == 0, f"wrk saw failures:\n{theirs.text}"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="defaults-retry-redispatch"),
        # Health checks alone (no retries, no passive observation): here errors do happen and
        # the bound means something.
        pytest.param({"retries": 0, "observe_error_limit": 0}, id="health-checks-only"),
    ],
)
def test_killed_instance_is_replaced_and_the_errors_are_bounded_by_health_checks(
    state_dir: Path, overrides: dict[str, object]
) -> None:
    cfg = haproxy_group_config(state_dir, **overrides)
    with running_service(cfg) as svc:
        transitions = record_transitions(svc)
        url = f"{balancer(svc).frontend_url()}{PATH}"
        scale_to(svc, 2)
        before = ready_names(svc)
        victim = min(before)
        with OpenLoopLoad(url, RATE_RPS, duration_s=LOAD_LIMIT_S) as load:
            wait_until(
                lambda: load.result.servers.get(victim, 0) >= 5, f"{victim} to take requests", READY_TIMEOUT_S
            )
            os.killpg(pid_of(svc, victim), signal.SIGKILL)  # the backend and its workers, at once
            wait_until(
                lambda: victim not in haproxy_servers(svc), f"{victim} to leave HAProxy", READY_TIMEOUT_S
            )
            left_haproxy = time.monotonic()
            wait_until(
                lambda: settled(svc, 2) and victim not in ready_names(svc), "two ready again", READY_TIMEOUT_S
            )
            (replacement,) = ready_names(svc) - before
            wait_until(
                lambda: load.result.servers.get(replacement, 0) >= 5,
                "the replacement to serve",
                READY_TIMEOUT_S,
            )
            result = load.stop()
        failed_transition = [t for t in transitions if t["name"] == victim and t["to"] == "failed"]

    window_s = cfg.lb.haproxy.detection_window_s
    bound = math.ceil(RATE_RPS * window_s)
    print(
        f"kill -9 behind HAProxy: {result.failed} failed of {result.sent} (bound {bound}, window {window_s}s)"
    )
    assert failed_transition, f"vmscale never marked {victim} failed: {transitions}"
    assert result.failed <= bound, f"{result.failed} failures > bound {bound}: {result.failures[:5]}"
    late = [t for t, ok in result.timeline if not ok and t > left_haproxy]
    assert not late, f"{len(late)} requests sent after {victim} left HAProxy still failed"


def test_killed_haproxy_is_restarted_with_the_full_server_list(state_dir: Path) -> None:
    cfg = haproxy_group_config(state_dir)
    with running_service(cfg) as svc:
        lb = balancer(svc)
        scale_to(svc, 2)
        old_pid = lb.pid()
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        killed = time.monotonic()
        # The loop runs every interval_s (0.5 s); allow generously for a busy machine.
        wait_until(
            lambda: lb.pid() not in (None, old_pid) and settled(svc, 2),
            "vmscale to restart HAProxy and re-push both servers",
            timeout_s=30,
        )
        took = time.monotonic() - killed
        servers = haproxy_servers(svc)
        answered: set[str] = set()

        def both_answer() -> bool:
            r = httpx.get(f"{lb.frontend_url()}{PATH}", timeout=5, trust_env=False)
            if r.status_code == 200:
                answered.add(r.json()["server"])
            return answered == servers

        wait_until(both_answer, "both servers to answer through the restarted HAProxy", timeout_s=30)
        ready = ready_names(svc)
    print(f"HAProxy back with {sorted(servers)} {took:.2f}s after SIGKILL")
    assert servers == ready and len(ready) == 2


def test_controller_restart_mid_drain_adopts_haproxy_and_finishes_the_drain(state_dir: Path) -> None:
    """vmscale stops (without removing anything) while an instance drains; HAProxy keeps serving.
    The next vmscale adopts the running HAProxy and the draining instance, waits for its
    requests, then removes it: no request fails across the restart."""
    cfg = haproxy_group_config(state_dir)
    first = Service(cfg, serve_api=False)
    second: Service | None = None
    first_running = True
    pool = ThreadPoolExecutor(HEAVY_MAX)
    try:
        first.start()
        first.controller.set_paused(True, "test")
        lb = balancer(first)
        front = lb.frontend_url()
        scale_to(first, 2)
        haproxy_pid = lb.pid()
        with OpenLoopLoad(f"{front}{PATH}", RATE_RPS, duration_s=LOAD_LIMIT_S) as load:
            wait_until(lambda: load.result.ok >= RATE_RPS, "steady traffic through HAProxy", READY_TIMEOUT_S)
            heavy = keep_both_busy(first, pool, f"{front}/fib/35")
            first.controller.set_desired(1, "test")
            draining = wait_until(
                lambda: [i.name for i in first.controller.instances() if i.state == "draining"],
                "an instance to start draining",
                READY_TIMEOUT_S,
            )
            first.stop(terminate=False)  # a controller restart: instances and HAProxy keep running
            first_running = False
            (victim,) = draining

            second = Service(cfg, serve_api=False)
            transitions = record_transitions(second)
            second.start()
            wait_until(
                lambda: settled(second, 1),
                "the adopted drain to finish (one instance, one server)",
                READY_TIMEOUT_S,
            )
            ok_after = load.result.ok
            wait_until(
                lambda: load.result.ok >= ok_after + RATE_RPS, "traffic after the drain", READY_TIMEOUT_S
            )
            ours = load.stop()
        slow = [f.result(timeout=60) for f in heavy]
        adopted_pid = balancer(second).pid()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if second is not None:
            second.stop(terminate=True)
        elif first_running:
            first.stop(terminate=True)
        else:
            balancer(first).stop()
        kill_backends(cfg.group.name)
    left = [(t["from"], t["reason"]) for t in transitions if t["name"] == victim and t["to"] == "terminating"]

    print(f"restart mid-drain: {ours.sent} sent, {ours.failed} failed; {victim}: {left}")
    assert adopted_pid == haproxy_pid, "the second vmscale should adopt the running HAProxy, not restart it"
    assert left and left[0][0] == "draining" and left[0][1].startswith("drained"), left
    assert ours.failed == 0, f"{ours.failed} of {ours.sent} requests failed: {ours.failures[:5]}"
    assert all(status == 200 for status, _, _ in slow), f"slow requests failed: {slow}"
