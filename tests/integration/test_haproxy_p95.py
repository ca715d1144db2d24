"""``latency_p95_s`` from a real HAProxy is a real 95th percentile of the requests it served,
measured from its per-request log lines, per server and for the group; HAProxy's own ``rtime``
(a mean) is not what a p95 policy sees. The receiver thread stops with the balancer."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.haproxy_support import running_haproxy
from tests.integration.stub_http import StubServer, stub_servers
from tests.support.wait import wait_until
from vmscale.lb.haproxy import HaproxyLoadBalancer
from vmscale.percentile import percentile


def send(url: str, delays_ms: list[int], workers: int = 4) -> list[float]:
    """GET /sleep/MS for each delay through ``url``; the client-side latencies, seconds."""
    with httpx.Client(timeout=10, trust_env=False) as client:

        def one(ms: int) -> float:
            r = client.get(f"{url}/sleep/{ms}")
            assert r.status_code == 200, r.text
            return r.elapsed.total_seconds()

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, delays_ms))


def logged(lb: HaproxyLoadBalancer, count: int) -> None:
    """Wait for HAProxy's log lines of ``count`` requests to reach the receiver (they are datagrams)."""
    wait_until(lambda: lb.latency.recorded >= count, f"{count} request log lines", 20)


def test_p95_of_a_known_distribution() -> None:
    # 80 fast, 18 slow, 2 very slow: the mean is 68 ms, the p95 (rank 94.05 of 100) is a 200 ms one.
    delays = [20] * 80 + [200] * 18 + [800] * 2
    random.Random(7).shuffle(delays)
    with stub_servers(StubServer("web-1")) as (one,), running_haproxy() as lb:
        lb.add(one.server)
        url = lb.frontend_url()
        assert url is not None
        client = send(url, delays)
        logged(lb, len(delays))
        stats = lb.stats()["web-1"]
        group = lb.backend_stats()
    assert lb.latency.recorded == len(delays), "every request is measured once"
    assert stats.latency_p95_s is not None and group is not None and group.latency_p95_s is not None
    client_p95 = percentile(client, 95)
    assert client_p95 is not None
    # HAProxy measures in whole milliseconds and adds its own (sub-millisecond) share.
    assert 0.2 <= stats.latency_p95_s <= 0.2 + 0.1, stats
    assert stats.latency_p95_s == pytest.approx(client_p95, abs=0.03)
    assert group.latency_p95_s == stats.latency_p95_s
    # HAProxy's own figure is a mean of the last requests: far below the p95 here.
    assert stats.response_time_s is not None and stats.response_time_s < 0.15, stats


def test_each_server_has_its_own_window_and_the_group_has_all() -> None:
    fast, slow = StubServer("web-1"), StubServer("web-2", extra_ms=150)
    with stub_servers(fast, slow), running_haproxy() as lb:
        lb.add(fast.server)
        lb.add(slow.server)
        url = lb.frontend_url()
        assert url is not None
        send(url, [10] * 60, workers=2)
        logged(lb, 60)
        stats = lb.stats()
        group = lb.backend_stats()
    p95 = {name: s.latency_p95_s for name, s in stats.items()}
    assert set(p95) == {"web-1", "web-2"}, p95
    assert p95["web-1"] is not None and 0.01 <= p95["web-1"] < 0.1, p95
    assert p95["web-2"] is not None and 0.16 <= p95["web-2"] < 0.3, p95
    assert group is not None and group.latency_p95_s is not None
    assert 0.16 <= group.latency_p95_s < 0.3  # the slow server's requests are in the group's top 5 %


def test_the_receiver_stops_with_the_balancer_and_close_keeps_haproxy() -> None:
    with running_haproxy() as lb:
        assert lb.log_receiver.running and lb.paths.log_socket.is_socket()
        lb.close()  # vmscale leaves, instances and HAProxy stay (--keep-instances)
        assert not lb.log_receiver.running and lb.alive()
        lb.start()  # a restarted vmscale adopts HAProxy and listens again
        assert lb.log_receiver.running and lb.alive()
        lb.stop()
        assert not lb.log_receiver.running and not lb.alive()
        assert not lb.paths.log_socket.exists()
