"""Consolidation after a scale-in: move the group onto fewer hosts and report the hosts left empty.

Off by default (``[cluster.consolidation] enabled``). A scale-in *arms* it; a round starts only when
``plan.consolidation_gate.blocked`` says nothing stands in the way (the cooldown since the last
change of the desired count, no overload in the last decision, a settled group), and then carries
out ``plan_consolidation``'s moves one at a time, at most ``max_moves`` of them. Before each move
the overload is checked again: a round stops as soon as a policy sees an overload, and after a
round (finished or stopped) the cooldown starts again. A round whose plan is empty disarms it until
the next scale-in.

Once a round's moves are done, each host it was to empty is checked against libvirt's own count of
domains there; an empty one is announced (an event, and a note in ``vmscale hosts``) and, when
``empty_host_command`` is set, that command runs for it (``VMSCALE_HOST``, ``VMSCALE_HOST_URI``,
``VMSCALE_GROUP``), through the hooks' command runner: no shell, a hard timeout, its whole process
group killed past it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from vmscale.clock import Clock
from vmscale.config.hosts import ConsolidationConfig
from vmscale.controller.host_events import HostChanged
from vmscale.controller.migrations import Move, Moved, Seat
from vmscale.controller.operations import Operations, OpKind, OpResult
from vmscale.event_kinds import Publish
from vmscale.hooks.command import run_command
from vmscale.hooks.http import Answer
from vmscale.hosts.values import HostStatus
from vmscale.model import Decision, InstanceState
from vmscale.plan.consolidation import Placed, plan_consolidation
from vmscale.plan.consolidation_gate import GateInput, blocked, overload
from vmscale.plan.placement import HostView

S = InstanceState
HOST_KEY = "host:"  # operations on a host (its command) are keyed "host:NAME"


@dataclass(frozen=True, slots=True)
class Timing:
    armed: bool = False  # a scale-in since the last round that found nothing to move
    quiet_since: float = 0.0  # monotonic: the last change of the desired count, or the last round's end
    desired: int | None = None
    decision: Decision | None = None  # the autoscaler's last decision (None while it is paused)


@dataclass(frozen=True, slots=True)
class Round:
    todo: tuple[Move, ...]
    emptied: tuple[str, ...]  # hosts the round is to leave empty
    made: int = 0
    in_flight: bool = False
    failed: str = ""


def ready_views(views: Sequence[HostView], seats: Sequence[Seat]) -> list[HostView]:
    """The hosts with the group's count on each being its *ready* instances: a host that also holds a
    parked pool instance or one still booting is then not seen as running the group alone, so no
    round tries to empty it."""
    ready = Counter(s.host for s in seats if s.state is S.READY and not s.pool)
    return [replace(v, group_instances=ready[v.name]) for v in views]


class Consolidator:
    def __init__(
        self,
        cfg: ConsolidationConfig,
        publish: Publish,
        ops: Operations,
        clock: Clock,
        *,
        group: str,
        memory_mb: int,
    ) -> None:
        self._cfg = cfg
        self._publish = publish
        self._ops = ops
        self._clock = clock
        self._group = group
        self._memory_mb = memory_mb
        self._timing = Timing(quiet_since=clock.monotonic())
        self._round: Round | None = None
        self.notes: dict[str, str] = {}  # host -> what happened to it last ("left empty at ...")

    @property
    def running(self) -> bool:
        return self._round is not None

    def observe(self, desired: int, decision: Decision | None, now: float) -> None:
        """Each tick: the desired count in force (a scale-in arms a round; any change restarts the
        cooldown) and the autoscaler's decision of this tick, if it made one."""
        t = self._timing
        if t.desired is None:
            t = replace(t, desired=desired)
        elif desired != t.desired:
            t = replace(t, armed=t.armed or desired < t.desired, quiet_since=now, desired=desired)
        if decision is not None:
            t = replace(t, decision=decision)
        self._timing = t

    def blocked(self, unsettled: str | None, now: float) -> str | None:
        t = self._timing
        gate = GateInput(
            self._cfg.enabled,
            t.armed,
            now - t.quiet_since,
            self._cfg.cooldown_s,
            overload(t.decision),
            unsettled,
        )
        return blocked(gate)

    def next_move(
        self, unsettled: str | None, views: Sequence[HostView], seats: Sequence[Seat], now: float
    ) -> Move | None:
        r = self._round
        if r is not None:
            return self._continue(r, now)
        if self.blocked(unsettled, now) is not None:
            return None
        placed = [
            Placed(s.name, s.host, s.vcpus, self._memory_mb)
            for s in seats
            if s.state is S.READY and not s.pool
        ]
        plan = plan_consolidation(ready_views(views, seats), placed, max_moves=self._cfg.max_moves)
        if plan.empty:
            self._timing = replace(self._timing, armed=False, quiet_since=now)
            self._publish(HostChanged("", "consolidation", f"consolidation: nothing to move ({plan.reason})"))
            return None
        moves = tuple(Move(m.name, m.src, m.dst, "consolidation", plan.reason) for m in plan.moves)
        listed = ", ".join(f"{m.name} {m.src} -> {m.dst}" for m in moves)
        self._publish(
            HostChanged(
                ",".join(plan.emptied), "consolidation", f"consolidation round: {plan.reason} ({listed})"
            )
        )
        self._round = Round(moves[1:], plan.emptied, in_flight=True)
        return moves[0]

    def _continue(self, r: Round, now: float) -> Move | None:
        if r.in_flight or not r.todo:
            return None
        why = overload(self._timing.decision)
        if why is not None:
            self._end(f"consolidation round stopped after {r.made} move(s): overloaded ({why})", now)
            return None
        self._round = replace(r, todo=r.todo[1:], in_flight=True)
        return r.todo[0]

    def moved(self, outcome: Moved) -> None:
        r = self._round
        if r is None or outcome.move.why != "consolidation":
            return
        if outcome.ok:
            self._round = replace(r, made=r.made + 1, in_flight=False)
        else:
            self._round = replace(
                r, todo=(), in_flight=False, failed=f"{outcome.move.name}: {outcome.detail}"
            )

    def check_empty(self, statuses: Sequence[HostStatus], now: float) -> None:
        """After a round's last move: which hosts libvirt now reports empty (after a refresh)."""
        r = self._round
        if r is None or r.in_flight or r.todo:
            return
        if r.failed:
            self._end(
                f"consolidation round stopped after {r.made} move(s): a migration failed ({r.failed})", now
            )
            return
        by_name = {s.name: s for s in statuses}
        for host in r.emptied:
            facts = by_name[host].facts if host in by_name else None
            if facts is None or facts.domains:
                held = "no facts" if facts is None else f"{facts.domains} domain(s)"
                self._publish(
                    HostChanged(host, "consolidation", f"{host} was to be left empty but has {held}")
                )
                continue
            stamp = time.strftime("%H:%M:%S", time.localtime(self._clock.now()))
            self.notes = {**self.notes, host: f"left empty by consolidation at {stamp}"}
            self._publish(
                HostChanged(
                    host, "empty", f"{host} is empty: consolidation moved the group's instances off it"
                )
            )
            if self._cfg.empty_host_command:
                self._run_command(by_name[host], now)
        self._end(f"consolidation round done: {r.made} move(s), {', '.join(r.emptied)} left empty", now)

    def _end(self, message: str, now: float) -> None:
        emptied = self._round.emptied if self._round is not None else ()
        self._round = None
        self._timing = replace(self._timing, quiet_since=now)
        self._publish(HostChanged(",".join(emptied), "consolidation", message))

    def _run_command(self, host: HostStatus, now: float) -> None:
        key = HOST_KEY + host.name
        if self._ops.busy(key):
            return
        env = {"VMSCALE_HOST": host.name, "VMSCALE_HOST_URI": host.uri, "VMSCALE_GROUP": self._group}
        argv = list(self._cfg.empty_host_command)
        self._ops.start(key, OpKind.HOST_COMMAND, now, run_command, argv, env, self._cfg.command_timeout_s)

    def command_done(self, r: OpResult) -> None:
        host = r.name.removeprefix(HOST_KEY)
        if r.error is not None:
            outcome, detail = "error", str(r.error)
        else:
            answer: Answer = r.value
            outcome, detail = answer.outcome.value, answer.detail
        note = f"{self.notes.get(host, '')}; command {outcome}".lstrip("; ")
        self.notes = {**self.notes, host: note}  # replaced whole: the API thread reads it
        self._publish(HostChanged(host, "command", f"command for empty host {host}: {outcome} ({detail})"))
