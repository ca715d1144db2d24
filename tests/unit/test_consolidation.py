"""Consolidation after scale-in (which instances move so hosts are left empty) and fencing (which
copy of a name survives a returning host)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmscale.plan.consolidation import Move, Placed, plan_consolidation, plan_drain
from vmscale.plan.fencing import Copy, choose_copy
from vmscale.plan.placement import HostLimits, HostView, Request, why_not

LIMITS = HostLimits(max_vcpu_overcommit=1.0, min_free_memory_mb=0)  # 4 CPUs = room for 4 one-vCPU guests


def host(name: str, group: int, other: int = 0, **kw: object) -> HostView:
    """A 4-CPU host with ``group`` of the group's 1-vCPU/512 MiB guests and ``other`` foreign ones."""
    used = group + other
    base: dict[str, object] = {
        "cpus": 4,
        "memory_free_mb": 4096.0 - 512 * used,
        "memory_total_mb": 4096.0,
        "running_vcpus": used,
        "domains": used,
        "group_instances": group,
        "limits": LIMITS,
    }
    base.update(kw)
    return HostView(name=name, **base)  # type: ignore[arg-type]


def instances(hosts: list[HostView]) -> list[Placed]:
    out, n = [], 0
    for hv in hosts:
        for _ in range(hv.group_instances):
            n += 1
            out.append(Placed(f"web-{n}", hv.name))
    return out


@pytest.mark.parametrize(
    ("hosts", "moves", "emptied"),
    [
        pytest.param(
            [host("h1", 2), host("h2", 1), host("h3", 1)],
            [Move("web-3", "h2", "h1"), Move("web-4", "h3", "h1")],
            ("h2", "h3"),
            id="two-singles-join-the-fullest",
        ),
        pytest.param([host("h1", 4), host("h2", 4)], [], (), id="all-full-nothing-to-do"),
        pytest.param([host("h1", 1), host("h2", 0)], [], (), id="never-onto-an-empty-host"),
        pytest.param([host("h1", 1), host("h2", 1, other=3)], [], (), id="full-host-with-foreign-guests"),
        pytest.param(
            [host("h1", 1, other=1), host("h2", 1)],
            [Move("web-2", "h2", "h1")],
            ("h2",),
            id="foreign-guests-pin-their-host-not-ours",
        ),
        pytest.param([host("h1", 3), host("h2", 2)], [], (), id="does-not-fit-nothing-moves"),
        pytest.param(
            [host("h1", 2), host("h2", 1), host("h3", 1, cordoned=True)],
            [Move("web-3", "h2", "h1"), Move("web-4", "h3", "h1")],
            ("h2", "h3"),
            id="cordoned-host-may-be-emptied-never-filled",
        ),
        pytest.param(
            [host("h1", 1), host("h2", 1, reachable=False)],
            [],
            (),
            id="unreachable-host-is-neither-source-nor-target",
        ),
        pytest.param(
            [host("h1", 2, draining=True), host("h2", 1)],
            [Move("web-3", "h2", "h1")][:0],
            (),
            id="draining-host-takes-nothing",
        ),
    ],
)
def test_consolidation_plans(hosts: list[HostView], moves: list[Move], emptied: tuple[str, ...]) -> None:
    plan = plan_consolidation(hosts, instances(hosts))
    assert list(plan.moves) == moves, plan.reason
    assert plan.emptied == emptied


def test_max_moves_bounds_one_round_and_the_reason_says_what_was_kept() -> None:
    hosts = [host("h1", 1), host("h2", 1), host("h3", 2)]
    plan = plan_consolidation(hosts, instances(hosts), max_moves=1)
    assert len(plan.moves) == 1 and plan.emptied == ("h1",)
    assert "h2 (would pass max_moves 1)" in plan.reason


@settings(max_examples=300, deadline=None)
@given(
    counts=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2)), min_size=1, max_size=8),
    flags=st.lists(st.sampled_from(["", "cordoned", "draining", "unreachable"]), min_size=8, max_size=8),
    max_moves=st.sampled_from([None, 1, 3]),
)
def test_consolidation_never_past_headroom_and_only_ever_empties_hosts(
    counts: list[tuple[int, int]], flags: list[str], max_moves: int | None
) -> None:
    hosts = []
    for i, (group, other) in enumerate(counts):
        other = min(other, 4 - group)
        kw = {"cordoned": flags[i] in ("cordoned", "draining"), "draining": flags[i] == "draining"}
        hosts.append(host(f"h{i}", group, other, reachable=flags[i] != "unreachable", **kw))
    insts = instances(hosts)
    plan = plan_consolidation(hosts, insts, max_moves=max_moves)
    views = {hv.name: hv for hv in hosts}
    where = {i.name: i.host for i in insts}
    for m in plan.moves:
        assert where[m.name] == m.src
        dst = views[m.dst]
        assert why_not(Request(m.name, 1, 512), dst) is None, (m, dst)  # fits before the move lands
        views[m.dst] = dst.with_instance(1, 512)
        views[m.src] = views[m.src].with_instance(1, 512, count=-1)
        where[m.name] = m.dst
    assert max_moves is None or len(plan.moves) <= max_moves
    # the point is fewer hosts powered: hosts running anything at all (the group may spread over
    # hosts that run other guests anyway, as long as whole hosts are left empty)
    powered_before = {hv.name for hv in hosts if hv.domains}
    powered_after = {name for name, hv in views.items() if hv.domains}
    assert powered_after == powered_before - set(plan.emptied)
    for name in plan.emptied:
        assert views[name].domains == 0 and name not in set(where.values())
    assert Counter(m.src for m in plan.moves).keys() <= set(plan.emptied)


# ------------------------------------------------------------------------------------- fencing
@pytest.mark.parametrize(
    ("copies", "recorded", "keep", "removed"),
    [
        pytest.param([Copy("h1", 100.0)], "h1", "h1", [], id="single-copy-kept"),
        pytest.param([Copy("h1", 100.0), Copy("h2", 200.0)], "h1", "h1", ["h2"], id="record-wins-over-newer"),
        pytest.param([Copy("h1", 100.0), Copy("h2", 200.0)], None, "h2", ["h1"], id="no-record-newest-wins"),
        pytest.param(
            [Copy("h1", 100.0), Copy("h2", 200.0)], "h3", "h2", ["h1"], id="record-elsewhere-newest"
        ),
        pytest.param([Copy("h2", 100.0), Copy("h1", 100.0)], None, "h1", ["h2"], id="tie-by-host-name"),
    ],
)
def test_fencing_rule(copies: list[Copy], recorded: str | None, keep: str, removed: list[str]) -> None:
    decision = choose_copy("web-3", copies, recorded_host=recorded)
    assert decision.keep is not None and decision.keep.host == keep
    assert [c.host for c in decision.remove] == removed
    assert decision.reason.startswith("web-3: ")


def test_fencing_explains_the_choice() -> None:
    decision = choose_copy("web-3", [Copy("h1", 1.0), Copy("h2", 2.0)], recorded_host="h2")
    assert decision.reason == "web-3: keep the copy on h2 (the record says h2); destroy the one on h1"


def test_replace_keeps_a_view_usable_for_the_next_decision() -> None:
    hv = replace(host("h1", 1), cordoned=True)
    assert why_not(Request("x"), hv) == "cordoned"


# ------------------------------------------------------------------------------------- drain
def test_drain_spreads_the_hosts_instances_over_the_others_within_headroom() -> None:
    hosts = [host("h1", 3), host("h2", 1), host("h3", 0), host("h4", 3, cordoned=True)]
    plan = plan_drain("h1", hosts, instances(hosts))
    assert [(m.name, m.dst) for m in plan.moves] == [("web-1", "h3"), ("web-2", "h2"), ("web-3", "h3")]
    assert plan.stuck == ()
    assert plan.reasons[0].startswith("web-1 on h3: spread") and "h1 is draining" in plan.reasons[0]


def test_drain_leaves_what_fits_nowhere_and_says_so() -> None:
    hosts = [host("h1", 3), host("h2", 3)]  # h2 has room for one more
    plan = plan_drain("h1", hosts, instances(hosts), strategy="binpack")
    assert [m.name for m in plan.moves] == ["web-1"] and plan.stuck == ("web-2", "web-3")
    assert "no host can take it" in plan.reasons[1]
