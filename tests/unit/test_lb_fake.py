"""The in-memory balancer behaves like the real one where the controller can tell: membership,
drain, session counts, failures and forgetting everything on restart."""

from __future__ import annotations

import pytest

from vmscale.errors import LoadBalancerError
from vmscale.lb.base import LoadBalancer, Server
from vmscale.lb.fake import FakeLoadBalancer

A = Server("web-1", "127.0.0.1", 18101)
B = Server("web-2", "127.0.0.1", 18102)


def test_is_a_load_balancer() -> None:
    assert isinstance(FakeLoadBalancer(), LoadBalancer)


def test_add_drain_remove_and_calls_are_recorded() -> None:
    lb = FakeLoadBalancer()
    lb.start()
    lb.add(A)
    lb.add(B)
    assert lb.in_rotation() == {"web-1", "web-2"}
    lb.drain("web-1")
    assert lb.in_rotation() == {"web-2"}
    assert lb.stats()["web-1"].state == "drain"
    lb.remove("web-1")
    lb.remove("web-1")  # already gone: still fine, like HAProxy's "No such server"
    assert set(lb.stats()) == {"web-2"}
    assert lb.calls[:5] == [("start",), ("add", "web-1"), ("add", "web-2"), ("drain", "web-1"), ("stats",)]


def test_sessions_are_settable_for_the_drain_wait() -> None:
    lb = FakeLoadBalancer()
    lb.sync({"web-1": A})
    lb.drain("web-1")
    lb.set_sessions("web-1", 3)
    assert lb.stats()["web-1"].sessions_current == 3
    lb.set_figures("web-1", sessions=0, queue=2, rate_rps=12.5, response_time_s=0.2)
    st = lb.stats()["web-1"]
    assert (st.sessions_current, st.queue_current, st.rate_rps, st.response_time_s) == (0, 2, 12.5, 0.2)


def test_sync_repairs_after_restart_and_respects_draining() -> None:
    lb = FakeLoadBalancer()
    lb.sync({"web-1": A, "web-2": B}, frozenset({"web-2"}))
    lb.restart()
    assert lb.stats() == {}
    lb.sync({"web-1": A, "web-2": B}, frozenset({"web-2"}))
    assert lb.in_rotation() == {"web-1"}
    assert lb.stats()["web-2"].state == "drain"
    lb.sync({"web-1": A})  # web-2 in neither: deleted
    assert set(lb.stats()) == {"web-1"}
    assert ("sync", "web-1", "web-2", "drain:web-2") in lb.calls


def test_sync_replaces_a_server_whose_address_changed() -> None:
    lb = FakeLoadBalancer()
    lb.sync({"web-1": A})
    lb.set_sessions("web-1", 4)
    moved = Server("web-1", "127.0.0.1", 19999)
    lb.sync({"web-1": moved})
    assert lb.members["web-1"].server == moved and lb.stats()["web-1"].sessions_current == 0


def test_injected_failures_surface_once() -> None:
    lb = FakeLoadBalancer()
    lb.fail_next.append(LoadBalancerError("socket gone"))
    with pytest.raises(LoadBalancerError, match="socket gone"):
        lb.add(A)
    lb.add(A)
    assert lb.in_rotation() == {"web-1"}
    with pytest.raises(LoadBalancerError):
        lb.drain("web-9")


def test_a_new_weight_keeps_the_servers_sessions_like_haproxys_set_weight() -> None:
    lb = FakeLoadBalancer()
    lb.sync({"web-1": A})
    lb.set_sessions("web-1", 2)
    lb.sync({"web-1": Server("web-1", "127.0.0.1", 18101, weight=2)})
    assert lb.weights() == {"web-1": 2}
    assert lb.stats()["web-1"].sessions_current == 2, "the same server, weighed anew"
    lb.sync({"web-1": Server("web-1", "127.0.0.1", 18199, weight=2)})
    assert lb.stats()["web-1"].sessions_current == 0, "a new address is a new server"
