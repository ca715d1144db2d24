"""When `vmscale up` stops: a leader alone removes its instances (as before elections); a leader
with a live standby hands over at once and leaves everything running; a standby never touches the
provider or the balancer, at start or at stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.leader import controller_id
from vmscale.providers.fake import FakeProvider
from vmscale.service import Service
from vmscale.store.sqlite import SqliteStore


def config(tmp_path: Path) -> Any:
    return parse_config(
        {
            "group": {"name": "web", "min": 1, "interval_s": 0.2},
            "provider": {"kind": "fake"},
            "api": {"bind": "127.0.0.1:0"},
            "state": {"dir": str(tmp_path)},
        }
    )


def started(tmp_path: Path) -> tuple[Service, FakeProvider, FakeLoadBalancer]:
    provider, lb = FakeProvider(), FakeLoadBalancer()
    svc = Service(config(tmp_path), provider=provider, lb=lb, serve_api=False)
    svc.start()
    return svc, provider, lb


def test_a_lone_leader_removes_its_instances_at_stop(tmp_path: Path) -> None:
    svc, provider, lb = started(tmp_path)
    wait_until(lambda: provider.instances, "the group's instance launched", 10)
    svc.stop(terminate=True)
    assert provider.instances == {}
    assert lb.calls[0] == ("start",) and lb.calls[-1] == ("stop",)


def test_a_leader_with_a_live_standby_hands_over_and_keeps_everything(tmp_path: Path) -> None:
    svc, provider, lb = started(tmp_path)
    wait_until(lambda: provider.instances, "the group's instance launched", 10)
    leases = svc.lease_store.leases("web")
    leases.heartbeat("otherhost/42/1.00", "http://otherhost:8900", "standby")  # a standby is alive
    svc.stop(terminate=True)
    assert list(provider.instances) == ["web-1"], "a hand-over terminated an instance"
    assert ("stop",) not in lb.calls, "a hand-over stopped the balancer"
    store = SqliteStore(tmp_path / "state.db")
    current = store.leases("web").current()
    store.close()
    assert current is not None and current.holder == "", "the lease was not released for the next leader"


def test_a_standby_never_calls_the_provider_or_the_balancer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    assert store.leases("web").try_acquire("otherhost/42/1.00", 60.0, address="http://otherhost:8900")
    store.close()
    svc, provider, lb = started(tmp_path)
    g = svc.controller.group()
    assert g.leadership is not None and g.leadership["role"] == "standby"
    assert g.leadership["leader_address"] == "http://otherhost:8900"
    svc.stop(terminate=True)
    assert provider.calls == [] and lb.calls == []


def test_a_crashed_controller_of_this_host_does_not_count_as_alive(tmp_path: Path) -> None:
    """kill -9 leaves a registry entry behind; a lone controller must still remove its instances."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    svc, provider, _ = started(tmp_path)
    wait_until(lambda: provider.instances, "the group's instance launched", 10)
    svc.lease_store.leases("web").heartbeat(controller_id(pid=dead.pid), "http://127.0.0.1:1", "leader")
    svc.stop(terminate=True)
    assert provider.instances == {}
