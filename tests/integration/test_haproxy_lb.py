"""A real HAProxy driven over its runtime API: process lifecycle, membership and repair after a
restart. Backends are real fib backend processes on loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.haproxy_support import backends, fast_config, running_haproxy
from tests.support.wait import wait_until
from vmscale.errors import LoadBalancerError
from vmscale.lb.haproxy import HaproxyLoadBalancer


def served_by(url: str, count: int) -> set[str]:
    return {httpx.get(f"{url}/fib/5", timeout=5).json()["server"] for _ in range(count)}


def test_start_is_idempotent_and_adopts_a_running_haproxy() -> None:
    with running_haproxy() as lb:
        pid = lb.pid()
        assert pid and lb.alive()
        lb.start()
        assert lb.pid() == pid
        other = HaproxyLoadBalancer(lb.config, "web", lb.paths.state_dir)  # e.g. vmscale restarted
        other.start()
        assert other.pid() == pid and other.alive()
        metrics = httpx.get(f"{lb.stats_url()}/metrics", timeout=5)
        assert metrics.status_code == 200 and "haproxy_process_" in metrics.text
        assert httpx.get(f"{lb.stats_url()}/stats", timeout=5).status_code == 200
    assert not lb.alive() and lb.pid() is None


def test_adopting_an_haproxy_without_our_backend_is_refused() -> None:
    with running_haproxy(group="web") as lb:
        foreign = HaproxyLoadBalancer(lb.config, "api", lb.paths.state_dir)
        with pytest.raises(LoadBalancerError, match="no backend 'api'"):
            foreign.start()


def test_port_in_use_is_a_clear_start_error() -> None:
    with running_haproxy() as first:
        state = Path(tempfile.mkdtemp(prefix="vmscale-hap-"))
        clash = HaproxyLoadBalancer(fast_config(bind=first.config.bind), "web", state)
        try:
            with pytest.raises(LoadBalancerError, match="did not start"):
                clash.start()
        finally:
            clash.stop()
            shutil.rmtree(state, ignore_errors=True)


def test_add_drain_remove_route_traffic() -> None:
    with running_haproxy() as lb, backends("web-1", "web-2") as (one, two):
        url = lb.frontend_url()
        assert url
        assert httpx.get(f"{url}/fib/5", timeout=5).status_code == 503  # empty backend
        lb.add(one.server)
        lb.add(two.server)
        lb.add(two.server)  # idempotent
        assert served_by(url, 8) == {"web-1", "web-2"}
        stats = lb.stats()
        assert {s.state for s in stats.values()} == {"ready"}
        assert sum(s.sessions_current for s in stats.values()) == 0
        lb.drain("web-1")
        assert lb.stats()["web-1"].state == "drain"
        assert served_by(url, 8) == {"web-2"}
        lb.remove("web-1")
        lb.remove("web-1")  # gone already: success
        assert set(lb.stats()) == {"web-2"}
        with pytest.raises(LoadBalancerError, match="No such server"):
            lb.drain("web-1")


def test_sync_fixes_every_difference() -> None:
    with running_haproxy() as lb, backends("web-1", "web-2", "web-3") as (one, two, three):
        url = lb.frontend_url()
        assert url
        lb.sync({"web-1": one.server, "web-2": two.server})
        assert served_by(url, 8) == {"web-1", "web-2"}
        lb.drain("web-1")  # drifted: the controller wants web-1 in rotation
        lb.add(three.server)  # drifted: web-3 should not be there
        lb.sync({"web-1": one.server, "web-2": two.server}, frozenset({"web-2"}))
        states = {name: s.state for name, s in lb.stats().items()}
        assert states == {"web-1": "ready", "web-2": "drain"}
        moved = three.server.__class__("web-1", "127.0.0.1", three.port)  # web-1's address changed
        lb.sync({"web-1": moved})
        assert set(lb.stats()) == {"web-1"}
        assert served_by(url, 4) == {"web-3"}  # HAProxy now sends "web-1" traffic to the new address


def test_sync_restores_membership_after_haproxy_restart() -> None:
    with running_haproxy() as lb, backends("web-1", "web-2") as (one, two):
        want = {"web-1": one.server, "web-2": two.server}
        lb.sync(want, frozenset({"web-2"}))
        lb.stop()  # stopped on purpose: sync must not resurrect it
        assert not lb.alive()
        with pytest.raises(LoadBalancerError):
            lb.sync(want)
        lb.start()
        assert lb.stats() == {}  # a fresh HAProxy forgot the runtime changes
        lb.sync(want, frozenset({"web-2"}))  # one call re-pushes everything
        assert {n: s.state for n, s in lb.stats().items()} == {"web-1": "ready", "web-2": "drain"}
        url = lb.frontend_url()
        assert url and served_by(url, 4) == {"web-1"}


def test_sync_heals_a_crashed_haproxy_in_one_call() -> None:
    with running_haproxy() as lb, backends("web-1", "web-2") as (one, two):
        want = {"web-1": one.server, "web-2": two.server}
        lb.sync(want)
        pid = lb.pid()
        assert pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not lb.alive(), "HAProxy to die", 10)
        lb.sync(want)
        assert lb.pid() not in (None, pid)
        assert {n: s.state for n, s in lb.stats().items()} == {"web-1": "ready", "web-2": "ready"}
        url = lb.frontend_url()
        assert url and served_by(url, 8) == {"web-1", "web-2"}


def test_stats_report_sessions_of_a_slow_request() -> None:
    with running_haproxy() as lb, backends("web-1") as (one,):
        lb.add(one.server)
        url = lb.frontend_url()
        assert url
        slow = threading.Thread(target=lambda: httpx.get(f"{url}/fib/30", timeout=60))
        slow.start()
        try:
            wait_until(lambda: lb.stats()["web-1"].sessions_current == 1, "one session on web-1", 20)
        finally:
            slow.join(60)
        wait_until(lambda: lb.stats()["web-1"].sessions_current == 0, "the session to end", 10)
        group = lb.backend_stats()
        assert group is not None and group.name == "web" and group.response_time_s is not None
