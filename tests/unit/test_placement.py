"""Placement: filters ("cannot"), spread and bin-pack scores ("prefer"), and the explanation."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmscale.plan.placement import (
    HostLimits,
    HostView,
    Request,
    place,
    place_all,
    why_not,
)

WEB7 = Request("web-7", vcpus=1, memory_mb=512)
ROOMY = HostLimits(max_vcpu_overcommit=4.0, min_free_memory_mb=512, max_instances=0)


def h(name: str, **kw: object) -> HostView:
    base: dict[str, object] = {
        "cpus": 4,
        "memory_free_mb": 8192.0,
        "limits": ROOMY,
    }
    base.update(kw)
    return HostView(name=name, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        pytest.param(h("h1", reachable=False), "unreachable", id="unreachable"),
        pytest.param(h("h1", cordoned=True), "cordoned", id="cordoned"),
        pytest.param(h("h1", cordoned=True, draining=True), "draining", id="draining"),
        pytest.param(
            h("h1", domains=3, limits=HostLimits(max_instances=3)),
            "full (3 of max 3 instances)",
            id="max-instances",
        ),
        pytest.param(
            h("h1", memory_free_mb=1000.0),
            "short of memory (1000 MiB free, 512 MiB would leave less than 512)",
            id="memory-headroom",
        ),
        pytest.param(
            h("h1", running_vcpus=16), "at its vCPU limit (16+1 > 4 CPUs x 4)", id="vcpu-overcommit"
        ),
        pytest.param(h("h1", memory_free_mb=1024.0), None, id="memory-exactly-enough"),
        pytest.param(h("h1", running_vcpus=15), None, id="vcpus-exactly-at-limit"),
        pytest.param(h("h1", domains=2, limits=HostLimits(max_instances=3)), None, id="below-max-instances"),
    ],
)
def test_filters(host: HostView, problem: str | None) -> None:
    assert why_not(WEB7, host) == problem


@pytest.mark.parametrize(
    ("hosts", "strategy", "chosen"),
    [
        pytest.param(
            [h("h1", group_instances=3), h("h2"), h("h3")], "spread", "h2", id="spread-fewest-of-group"
        ),
        pytest.param(
            [
                h("h1", group_instances=1, labels={"zone": "a"}),
                h("h2", labels={"zone": "a"}),
                h("h3", labels={"zone": "b"}, group_instances=1),
            ],
            "spread",
            "h2",
            id="spread-zone-tie-then-host",
        ),
        pytest.param(
            [
                h("h1", labels={"zone": "a"}),
                h("h2", labels={"zone": "a"}, group_instances=1),
                h("h3", labels={"zone": "b"}, group_instances=1),
            ],
            "spread",
            "h1",
            id="spread-zones-first",
        ),
        pytest.param(
            [
                h("h1", labels={"zone": "a"}, group_instances=1),
                h("h2", labels={"zone": "a"}),
                h("h3", labels={"zone": "b"}, group_instances=1),
            ],
            "spread",
            "h2",
            id="spread-empty-host-in-busy-zone-vs-busy-host-elsewhere",
        ),
        pytest.param(
            [h("h1"), h("h2", running_vcpus=4)], "spread", "h1", id="spread-tie-goes-to-less-loaded"
        ),
        pytest.param([h("h2"), h("h1")], "spread", "h1", id="spread-full-tie-by-name"),
        pytest.param(
            [h("h1", domains=1, running_vcpus=2), h("h2", domains=3, running_vcpus=6), h("h3")],
            "binpack",
            "h2",
            id="binpack-fullest",
        ),
        pytest.param(
            [h("h1"), h("h2", domains=1, running_vcpus=1)], "binpack", "h2", id="binpack-avoids-empty-hosts"
        ),
        pytest.param(
            [h("h1", domains=4, running_vcpus=16), h("h2", domains=1, running_vcpus=1)],
            "binpack",
            "h2",
            id="binpack-fullest-that-fits",
        ),
        pytest.param(
            [h("h1", cordoned=True), h("h2", group_instances=5)], "spread", "h2", id="cordoned-never-chosen"
        ),
        pytest.param(
            [
                h("h1", domains=1, memory_total_mb=16384.0, memory_free_mb=4096.0),
                h("h2", domains=1, running_vcpus=8, memory_total_mb=16384.0, memory_free_mb=12288.0),
            ],
            "binpack",
            "h1",
            id="binpack-counts-memory-too",
        ),
    ],
)
def test_scores_choose(hosts: list[HostView], strategy: str, chosen: str) -> None:
    p = place(WEB7, hosts, strategy=strategy)  # type: ignore[arg-type]
    assert p.host == chosen, p.reason


def test_explanation_names_the_rule_the_counts_and_the_rejected_hosts() -> None:
    p = place(WEB7, [h("h1", group_instances=3), h("h2"), h("h3", cordoned=True)])
    assert p.reason == "web-7 on h2: spread, h2 has 0 of the group, h1 has 3, h3 is cordoned"
    assert p.rejected == {"h3": "cordoned"}


def test_explanation_groups_hosts_rejected_for_the_same_reason_and_counts_the_rest() -> None:
    hosts = [h(f"h{i}", reachable=False) for i in range(1, 6)] + [h("h9")]
    p = place(WEB7, hosts)
    assert p.reason == "web-7 on h9: spread, h9 has 0 of the group, h1, h2, h3 (+2 more) are unreachable"


def test_no_eligible_host_says_why_for_each() -> None:
    p = place(WEB7, [h("h1", cordoned=True), h("h2", memory_free_mb=600.0)])
    assert not p.placed and p.host is None
    assert p.reason.startswith("web-7: no host can take it (h1: cordoned; h2: short of memory")


def test_place_all_sees_earlier_placements() -> None:
    placements, views = place_all([Request(f"web-{i}") for i in range(1, 7)], [h("h1"), h("h2"), h("h3")])
    assert [p.host for p in placements] == ["h1", "h2", "h3", "h1", "h2", "h3"]
    assert [v.group_instances for v in views] == [2, 2, 2]
    assert [v.memory_free_mb for v in views] == [8192.0 - 1024] * 3


def test_place_all_stops_at_headroom_and_reports_the_rest() -> None:
    tight = h("h1", memory_free_mb=2048.0)  # 3 x 512 leaves 512: the 4th would go below
    placements, _ = place_all([Request(f"web-{i}") for i in range(1, 5)], [tight], strategy="binpack")
    assert [p.host for p in placements] == ["h1", "h1", "h1", None]
    assert "short of memory" in placements[3].reason


# ------------------------------------------------------------------------------------- properties
host_st = st.builds(
    HostView,
    name=st.sampled_from([f"h{i}" for i in range(12)]),
    cpus=st.integers(1, 16),
    memory_free_mb=st.floats(0, 32768),
    memory_total_mb=st.just(32768.0),
    running_vcpus=st.integers(0, 40),
    domains=st.integers(0, 10),
    group_instances=st.integers(0, 5),
    labels=st.sampled_from([{}, {"zone": "a"}, {"zone": "b"}]),
    limits=st.builds(
        HostLimits,
        max_vcpu_overcommit=st.sampled_from([1.0, 2.0, 4.0]),
        min_free_memory_mb=st.sampled_from([0, 256, 1024]),
        max_instances=st.sampled_from([0, 3, 8]),
    ),
    reachable=st.booleans(),
    cordoned=st.booleans(),
    draining=st.booleans(),
).map(lambda v: replace(v, domains=max(v.domains, v.group_instances)))


def unique(hosts: list[HostView]) -> list[HostView]:
    seen: dict[str, HostView] = {}
    for v in hosts:
        seen.setdefault(v.name, v)
    return list(seen.values())


@settings(max_examples=300, deadline=None)
@given(
    hosts=st.lists(host_st, min_size=1, max_size=12).map(unique),
    count=st.integers(1, 30),
    strategy=st.sampled_from(["spread", "binpack"]),
    size=st.sampled_from([(1, 256), (2, 1024), (4, 4096)]),
)
def test_never_past_headroom_and_never_on_an_ineligible_host(
    hosts: list[HostView], count: int, strategy: str, size: tuple[int, int]
) -> None:
    vcpus, mem = size
    before = {v.name: v for v in hosts}
    placements, after = place_all(
        [Request(f"g-{i}", vcpus, mem) for i in range(count)],
        hosts,
        strategy=strategy,  # type: ignore[arg-type]
    )
    added = Counter(p.host for p in placements if p.host)
    for v in after:
        if not added[v.name]:
            continue
        b = before[v.name]
        assert b.reachable and not b.cordoned and not b.draining
        assert v.memory_free_mb >= v.limits.min_free_memory_mb
        assert v.running_vcpus <= v.cpus * v.limits.max_vcpu_overcommit
        assert not v.limits.max_instances or v.domains <= v.limits.max_instances


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.sampled_from([f"h{i}" for i in range(10)]), min_size=1, max_size=10, unique=True),
    count=st.integers(1, 40),
)
def test_spread_from_empty_keeps_hosts_within_one_of_each_other(names: list[str], count: int) -> None:
    _, after = place_all([Request(f"g-{i}", 1, 64) for i in range(count)], [h(n, cpus=64) for n in names])
    counts = [v.group_instances for v in after]
    assert max(counts) - min(counts) <= 1, counts


@settings(max_examples=200, deadline=None)
@given(
    existing=st.lists(st.integers(0, 6), min_size=1, max_size=10),
    count=st.integers(1, 40),
    zoned=st.booleans(),
)
def test_spread_only_ever_fills_the_emptiest_eligible_hosts(
    existing: list[int], count: int, zoned: bool
) -> None:
    """Whatever the start, a host that gets an instance ends at most one above the least-filled one
    (water-filling): spread is never worse than +-1 over the eligible hosts it touches. With one
    zone per host the zone rule is the host rule; with a cordoned host among them, it still holds
    over the eligible ones."""
    hosts = [
        h(f"h{i}", group_instances=n, domains=n, cpus=64, **({"labels": {"zone": f"z{i}"}} if zoned else {}))
        for i, n in enumerate(existing)
    ] + [h("hx", cordoned=True, cpus=64)]
    _, after = place_all([Request(f"g-{i}", 1, 64) for i in range(count)], hosts)
    eligible = [v for v in after if not v.cordoned]
    low = min(v.group_instances for v in eligible)
    for v, start in zip(eligible, existing, strict=True):
        if v.group_instances > start:
            assert v.group_instances <= low + 1, [v.group_instances for v in eligible]
    assert after[-1].group_instances == 0
