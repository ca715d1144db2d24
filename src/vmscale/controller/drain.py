"""Draining hosts: every instance of the group moves off by live migration, one at a time.

``vmscale hosts drain NAME`` records the wish (``wishes.py``); each full tick ``Drains.step`` looks
at every draining host and says what comes next, from the controller's record of where each
instance is (``Seat``) and the hosts as libvirt reported them:

* a ready instance on the host moves to where the group's placement puts it (``plan_drain``: never
  past a host's headroom); the first such move starts, the rest wait for it;
* an instance still launching or booting there is waited for (it moves once ready);
* a parked warm-pool instance there is stopped (the pool refills on the other hosts);
* an instance whose migration failed stays where it was, serving, and is named when the drain ends;
  so is one that fits on no other host.

When nothing is left to move the drain ends: the host stays cordoned (an operator uncordons it),
and an event says what moved and what stayed. Running ``drain`` again retries what stayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from vmscale.clock import Clock
from vmscale.controller.migrations import Move, Moved, Seat
from vmscale.controller.wishes import HostWishes
from vmscale.model import InstanceState
from vmscale.plan.consolidation import Placed, plan_drain
from vmscale.plan.placement import HostView, Strategy

S = InstanceState
ARRIVING = (S.PENDING, S.BOOTING, S.RESUMING)


@dataclass(frozen=True, slots=True)
class DrainState:
    """One drain's progress (``vmscale hosts`` shows it)."""

    host: str
    started_at: float  # epoch seconds
    moved: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()  # (instance, why its migration failed)


@dataclass(frozen=True, slots=True)
class DrainNext:
    move: Move | None = None
    stop: tuple[str, ...] = ()  # parked warm-pool instances on the host
    waiting: tuple[str, ...] = ()  # launching, booting or busy there: moved once ready
    stuck: tuple[str, ...] = ()  # no other host can take them now
    done: bool = False


def drain_next(
    host: str,
    views: Sequence[HostView],
    seats: Sequence[Seat],
    failed: frozenset[str],
    *,
    memory_mb: int,
    strategy: Strategy,
    spread_label: str,
) -> DrainNext:
    """What the drain of ``host`` does next. Pure."""
    mine = [s for s in seats if s.host == host]
    stop = tuple(s.name for s in mine if s.pool and s.state is S.WARM and not s.busy)
    waiting = tuple(s.name for s in mine if s.state in ARRIVING or (s.busy and s.state is S.READY))
    movable = [s for s in mine if s.state is S.READY and not s.busy and s.name not in failed]
    stuck: tuple[str, ...] = ()
    if movable:
        placed = [Placed(s.name, s.host, s.vcpus, memory_mb) for s in movable]
        plan = plan_drain(host, views, placed, strategy=strategy, spread_label=spread_label)
        if plan.moves:
            m = plan.moves[0]
            note = next((r for r in plan.reasons if r.startswith(f"{m.name} on ")), "")
            return DrainNext(Move(m.name, host, m.dst, "drain", note), stop, waiting)
        stuck = plan.stuck
    return DrainNext(None, stop, waiting, stuck, done=not waiting)


def summary(state: DrainState, stuck: Sequence[str]) -> str:
    """The sentence that ends a drain."""
    h = state.host
    moved = f"moved {', '.join(state.moved)}" if state.moved else "nothing to move"
    parts = [f"drain of {h} finished: {moved}"]
    parts += [f"{name} stays on {h}, serving (its migration failed: {why})" for name, why in state.failed]
    if stuck:
        parts.append(f"{', '.join(stuck)} stay(s) on {h}, serving (no other host can take them now)")
    left = state.failed or stuck
    end = f"`vmscale hosts drain {h}` tries again" if left else f"`vmscale hosts uncordon {h}` uses it again"
    return "; ".join(parts) + f". {h} stays cordoned; {end}"


class Drains:
    def __init__(
        self, wishes: HostWishes, clock: Clock, *, memory_mb: int, strategy: Strategy, spread_label: str
    ) -> None:
        self._wishes = wishes
        self._clock = clock
        self._memory_mb = memory_mb
        self._strategy = strategy
        self._label = spread_label
        self._states: dict[str, DrainState] = {}  # replaced whole: the API thread reads it

    @property
    def progress(self) -> dict[str, DrainState]:
        return self._states

    @property
    def active(self) -> bool:
        return bool(self._wishes.draining())

    def step(self, views: Sequence[HostView], seats: Sequence[Seat]) -> DrainNext:
        """The next thing to do for the first draining host that has something to do (hosts are
        drained one after the other); ends the drains that are done."""
        draining = self._wishes.draining()
        states = {h: st for h, st in self._states.items() if h in draining}
        result = DrainNext()
        for host in draining:
            st = states.setdefault(host, DrainState(host, self._clock.now()))
            failed = frozenset(name for name, _ in st.failed)
            nxt = drain_next(
                host,
                views,
                seats,
                failed,
                memory_mb=self._memory_mb,
                strategy=self._strategy,
                spread_label=self._label,
            )
            if nxt.done and not nxt.stop:
                del states[host]
                self._states = states
                stayed = (*(name for name, _ in st.failed), *nxt.stuck)
                self._wishes.drained(host, summary(st, nxt.stuck), stayed)
                continue
            result = nxt
            break
        self._states = states
        return result

    def moved(self, outcome: Moved) -> None:
        m = outcome.move
        st = self._states.get(m.src)
        if st is None or m.why != "drain":
            return
        if outcome.ok:
            st = replace(st, moved=(*st.moved, m.name))
        else:
            st = replace(st, failed=(*st.failed, (m.name, outcome.detail)))
        self._states = {**self._states, m.src: st}
