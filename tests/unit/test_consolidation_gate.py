"""When a consolidation round may run (plan/consolidation_gate.py), and what a drain does next
(controller/drain.py's pure ``drain_next``): tables with an id per row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from vmscale.controller.drain import DrainState, drain_next, summary
from vmscale.controller.migrations import Move, Seat
from vmscale.model import Decision, Direction, Figures, InstanceState, ReasonCode
from vmscale.plan.consolidation_gate import GateInput, blocked, overload
from vmscale.plan.placement import HostView

S = InstanceState


def decision(
    direction: Direction, current: int, desired: int, code: ReasonCode = ReasonCode.WITHIN_BOUNDS, **f: Any
) -> Decision:
    return Decision(desired, direction, "why", "cpu", current, Figures(**f), code)


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        pytest.param(None, None, id="no decision yet (paused from the start)"),
        pytest.param(decision(Direction.NONE, 2, 2, observed=40, upper=75), None, id="calm threshold"),
        pytest.param(decision(Direction.UP, 2, 3), "the last decision scaled up (2 -> 3)", id="scale-up"),
        pytest.param(
            decision(Direction.NONE, 2, 2, observed=90, upper=75),
            "cpu sees 90.0 above its upper bound 75",
            id="threshold streak not long enough yet",
        ),
        pytest.param(
            decision(Direction.NONE, 2, 2, recommendation=3, target=60),
            "cpu recommends 3 instances, more than 2",
            id="target held by a cooldown",
        ),
        pytest.param(
            decision(Direction.NONE, 2, 2, highest_proposal=4),
            "a policy proposes 4 instances, more than the 2 there are",
            id="another policy, not the winner, wants more",
        ),
        pytest.param(decision(Direction.DOWN, 3, 2, recommendation=2), None, id="scale-in"),
        pytest.param(
            decision(Direction.NONE, 4, 4, ReasonCode.LIMITED_MAX),
            "cpu wants more instances (limited_max)",
            id="at max and wanting more",
        ),
    ],
)
def test_overload_is_read_from_the_last_decision(d: Decision | None, expected: str | None) -> None:
    assert overload(d) == expected


CALM = GateInput(enabled=True, armed=True, quiet_s=400, cooldown_s=300, overload=None, unsettled=None)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({}, None, id="all clear"),
        pytest.param({"enabled": False}, "consolidation is off (cluster.consolidation.enabled)", id="off"),
        pytest.param({"armed": False}, "no scale-in since the last round", id="not armed"),
        pytest.param({"overload": "x"}, "overloaded: x", id="overload wins over the cooldown"),
        pytest.param({"unsettled": "web-3 is booting"}, "waiting: web-3 is booting", id="unsettled"),
        pytest.param({"quiet_s": 120}, "cooldown: 120 of 300 s since the last scale event", id="cooldown"),
    ],
)
def test_a_round_runs_only_when_nothing_blocks_it(
    changes: Mapping[str, object], expected: str | None
) -> None:
    from dataclasses import replace

    assert blocked(replace(CALM, **changes)) == expected  # type: ignore[arg-type]


def view(name: str, *, group: int, domains: int | None = None, **kw: object) -> HostView:
    return HostView(
        name, cpus=4, memory_free_mb=6000, memory_total_mb=8192, running_vcpus=group,
        domains=group if domains is None else domains, group_instances=group, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


VIEWS = [view("h1", group=2), view("h2", group=1), view("h3", group=0, cordoned=True)]


@pytest.mark.parametrize(
    ("seats", "failed", "move", "stop", "waiting", "done"),
    [
        pytest.param(
            [Seat("web-1", "h1", S.READY), Seat("web-3", "h1", S.READY), Seat("web-2", "h2", S.READY)],
            frozenset(),
            Move("web-1", "h1", "h2", "drain",
                 "web-1 on h2: spread, h2 has 1 of the group, h1 is draining, h3 is cordoned"),
            (), (), False,
            id="the first ready instance moves where spread puts it (never the cordoned h3)",
        ),
        pytest.param(
            [Seat("web-1", "h1", S.READY, busy=True), Seat("web-3", "h1", S.BOOTING)],
            frozenset(), None, (), ("web-1", "web-3"), False,
            id="one moving, one booting: wait",
        ),
        pytest.param(
            [Seat("web-1", "h1", S.READY), Seat("web-4", "h1", S.WARM, pool=True)],
            frozenset({"web-1"}), None, ("web-4",), (), True,
            id="its migration failed: it stays; a parked pool instance is stopped",
        ),
        pytest.param([Seat("web-2", "h2", S.READY)], frozenset(), None, (), (), True,
                     id="nothing left: done"),
    ],
)  # fmt: skip
def test_what_a_drain_does_next(
    seats: list[Seat],
    failed: frozenset[str],
    move: Move | None,
    stop: tuple[str, ...],
    waiting: tuple[str, ...],
    done: bool,
) -> None:
    nxt = drain_next("h1", VIEWS, seats, failed, memory_mb=512, strategy="spread", spread_label="zone")
    assert (nxt.move, nxt.stop, nxt.waiting, nxt.done) == (move, stop, waiting, done)


def test_a_drain_that_cannot_place_an_instance_names_it() -> None:
    full = [view("h1", group=1), view("h2", group=1, cordoned=True)]
    nxt = drain_next("h1", full, [Seat("web-1", "h1", S.READY)], frozenset(), memory_mb=512,
                     strategy="spread", spread_label="zone")  # fmt: skip
    assert (nxt.move, nxt.stuck, nxt.done) == (None, ("web-1",), True)
    text = summary(DrainState("h1", 0.0, moved=("web-3",)), nxt.stuck)
    assert text == (
        "drain of h1 finished: moved web-3; web-1 stay(s) on h1, serving (no other host can take them now). "
        "h1 stays cordoned; `vmscale hosts drain h1` tries again"
    )
