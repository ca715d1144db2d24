"""Host reachability, back-off and the inventory, over libvirt's in-process test driver
(``test:///default``: the real libvirt API, no daemon) and a URI that cannot answer."""

from __future__ import annotations

import pytest

from vmscale.clock import FakeClock
from vmscale.config.hosts import ClusterConfig, HostConfig
from vmscale.errors import HostUnreachableError
from vmscale.hosts.facts import offers_kvm
from vmscale.hosts.inventory import HostInventory
from vmscale.hosts.watch import HostWatch, Reach
from vmscale.plan.placement import HostLimits
from vmscale.providers.libvirt.connection import LibvirtConnection

DEAD = "qemu+unix:///system?socket=/nonexistent/vmscale-test.sock"


def test_watch_goes_not_answering_then_unreachable_after_the_grace_period() -> None:
    w = HostWatch(grace_s=30, backoff_initial_s=1, backoff_max_s=8)
    assert w.state(0).reach is Reach.UNKNOWN
    w.answered(0)
    assert w.state(1).reach is Reach.UP
    w.failed(10, "connection refused")
    assert w.state(10).reach is Reach.NOT_ANSWERING and w.state(10).last_error == "connection refused"
    assert w.state(39.9).reach is Reach.NOT_ANSWERING
    assert w.state(40).reach is Reach.UNREACHABLE
    w.answered(41)
    assert w.state(41).reach is Reach.UP and w.state(41).failures == 0


def test_watch_backs_off_exponentially_up_to_the_maximum() -> None:
    w = HostWatch(grace_s=30, backoff_initial_s=1, backoff_max_s=8)
    t, waits = 0.0, []
    for _ in range(6):
        w.failed(t, "down")
        wait = w.state(t).retry_in_s
        waits.append(wait)
        assert not w.may_try(t + wait - 0.01) and w.may_try(t + wait)
        t += wait
    assert waits == [1, 2, 4, 8, 8, 8]


def inventory(clock: FakeClock, *hosts: HostConfig, grace_s: float = 30) -> HostInventory:
    return HostInventory(
        list(hosts),
        cluster=ClusterConfig(unreachable_after_s=grace_s, reconnect_initial_s=1, reconnect_max_s=4),
        defaults=HostLimits(max_vcpu_overcommit=2.0, min_free_memory_mb=256),
        call_timeout_s=5,
        clock=clock,
    )


def test_inventory_reads_facts_from_libvirt_and_offers_views_to_placement() -> None:
    clock = FakeClock()
    inv = inventory(
        clock, HostConfig(name="h1", uri="test:///default", labels={"zone": "a"}, max_instances=9)
    )
    (status,) = inv.refresh()
    assert status.state == "up" and status.facts is not None
    # the test driver's host: 16 CPUs, 3 GiB; its one domain "test" runs with 2 vCPUs and 2 GiB
    assert (status.facts.cpus, status.facts.running_vcpus, status.facts.domains) == (16, 2, 1)
    assert status.facts.memory_committed_mb == 2048.0
    (view,) = inv.views("web")
    assert view.reachable and view.labels == {"zone": "a"} and view.group_instances == 0
    assert view.limits == HostLimits(max_vcpu_overcommit=2.0, min_free_memory_mb=256, max_instances=9)
    assert status.facts.memory_total_mb == 3072.0
    assert view.memory_free_mb == status.facts.memory_free_mb <= 3072.0 - 2048.0  # never above uncommitted
    inv.close()


def test_a_host_that_does_not_answer_is_backed_off_then_unreachable_and_comes_back() -> None:
    clock = FakeClock()
    live = HostConfig(name="h1", uri="test:///default")
    dead = HostConfig(name="h2", uri=DEAD)
    inv = inventory(clock, live, dead, grace_s=10)
    statuses = {s.name: s for s in inv.refresh()}
    assert statuses["h1"].state == "up"
    assert statuses["h2"].state == "not answering" and "cannot connect" in statuses["h2"].error
    assert not {v.name: v for v in inv.views("web")}["h2"].reachable
    with pytest.raises(HostUnreachableError, match=r"host h2 is not answering .* next try in 1\.0 s") as info:
        inv.connection("h2").call("list", lambda c: c.listAllDomains(0))
    assert info.value.host == "h2"
    clock.advance(11)
    assert {s.name: s.state for s in inv.refresh()}["h2"] == "unreachable"
    # the host comes back: the next allowed attempt reaches it and it is up again at once
    inv.handle("h2").conn.conn = LibvirtConnection("test:///default", 5)
    clock.advance(4)
    assert {s.name: s.state for s in inv.refresh()}["h2"] == "up"
    inv.close()


def test_cordon_and_drain_are_wishes_shown_in_the_state_and_keep_placement_away() -> None:
    inv = inventory(
        FakeClock(),
        HostConfig(name="h1", uri="test:///default"),
        HostConfig(name="h2", uri="test:///default?x=2", cordoned=True),
    )
    inv.refresh()
    assert [s.state for s in inv.statuses()] == ["up", "cordoned"]
    inv.drain("h1")
    assert [s.state for s in inv.statuses()] == ["draining", "cordoned"]
    assert [(v.cordoned, v.draining) for v in inv.views("web")] == [(True, True), (True, False)]
    inv.uncordon("h1")
    inv.uncordon("h2")
    assert [s.state for s in inv.statuses()] == ["up", "up"]
    with pytest.raises(ValueError, match="unknown host 'h9'; the hosts are: h1, h2"):
        inv.cordon("h9")
    inv.close()


@pytest.mark.parametrize(
    ("caps", "kvm"),
    [
        (
            "<capabilities><guest><arch name='x86_64'><domain type='qemu'/></arch></guest></capabilities>",
            False,
        ),
        (
            "<capabilities><guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/>"
            "</arch></guest></capabilities>",
            True,
        ),
        ("not xml", False),
    ],
    ids=["tcg-only", "kvm", "garbage"],
)
def test_kvm_is_read_from_the_host_capabilities(caps: str, kvm: bool) -> None:
    assert offers_kvm(caps) is kvm
