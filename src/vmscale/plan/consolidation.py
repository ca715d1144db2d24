"""Where a host's instances go when it is drained, and, after a scale-in, which instances to move so
the group leaves whole hosts empty. Pure.

``plan_drain``: every instance of the draining host, largest first, goes where placement (the
group's strategy) puts it among the other hosts, each move seeing the hosts as the previous ones
left them; an instance that fits nowhere stays (and is named), it is never forced past headroom.

``plan_consolidation``:

A host can be left empty only if everything on it is this group's (``domains == group_instances``);
a host that also runs other domains stays powered whatever the group does, so moving the group off
it would only cost migrations. The planner tries to empty such hosts one at a time, the cheapest
first (fewest instances, then least used), moving each of their instances with the bin-pack rule to
the fullest other host that still passes every placement filter and already runs something (moving
onto an empty host would only swap which host is powered). A host is emptied only when all of
its instances fit elsewhere; otherwise nothing of it moves. Destinations never go past their
headroom (the same filters as placement), never onto a host being emptied, and never onto an
unreachable, cordoned or draining host. An unreachable host is never a source (its guests cannot be
migrated), nor a draining one (the drain already moves its guests); a cordoned one may be.
``max_moves`` bounds the work of one round so it cannot fight a scale-up that follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from vmscale.plan.placement import HostView, Request, Strategy, binpack_key, place, why_not


@dataclass(frozen=True, slots=True)
class Placed:
    """One of the group's instances where it runs now."""

    name: str
    host: str
    vcpus: int = 1
    memory_mb: int = 512


@dataclass(frozen=True, slots=True)
class Move:
    name: str
    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class ConsolidationPlan:
    moves: tuple[Move, ...]
    emptied: tuple[str, ...]  # hosts with nothing left on them once the moves are done
    reason: str

    @property
    def empty(self) -> bool:
        return not self.moves


def _emptiable(host: HostView) -> bool:
    """Reachable, not being drained (the drain moves its guests), and running only the group."""
    return (
        host.reachable
        and not host.draining
        and host.group_instances > 0
        and host.domains == host.group_instances
    )


def _fit(
    instances: Sequence[Placed], views: dict[str, HostView], closed: set[str]
) -> tuple[list[Move], dict[str, HostView]] | None:
    """Bin-pack ``instances`` onto the open hosts; None when one of them fits nowhere."""
    trial = dict(views)
    moves: list[Move] = []
    for inst in sorted(instances, key=lambda i: (-i.memory_mb, -i.vcpus, i.name)):
        req = Request(inst.name, inst.vcpus, inst.memory_mb)
        # only onto hosts that run something already: filling an empty host empties none
        open_hosts = [
            h for n, h in trial.items() if n not in closed and h.domains and why_not(req, h) is None
        ]
        if not open_hosts:
            return None
        dst = min(open_hosts, key=lambda h: binpack_key(h, req))
        trial[dst.name] = dst.with_instance(inst.vcpus, inst.memory_mb)
        trial[inst.host] = trial[inst.host].with_instance(inst.vcpus, inst.memory_mb, count=-1)
        moves.append(Move(inst.name, inst.host, dst.name))
    return moves, trial


def plan_consolidation(
    hosts: Sequence[HostView], instances: Sequence[Placed], *, max_moves: int | None = None
) -> ConsolidationPlan:
    """The moves that empty the most hosts, cheapest first, within ``max_moves`` migrations."""
    views = {h.name: h for h in hosts}
    on: dict[str, list[Placed]] = {}
    for inst in instances:
        on.setdefault(inst.host, []).append(inst)
    candidates = sorted(
        (h for h in hosts if _emptiable(h) and on.get(h.name)),
        key=lambda h: (h.group_instances, h.utilisation(), h.name),
    )
    closed: set[str] = set()
    received: set[str] = set()  # a host that takes instances this round is not emptied in it
    moves: list[Move] = []
    skipped: list[str] = []
    for cand in candidates:
        if cand.name in received:
            continue
        if max_moves is not None and len(moves) + len(on[cand.name]) > max_moves:
            skipped.append(f"{cand.name} (would pass max_moves {max_moves})")
            continue
        fitted = _fit(on[cand.name], views, closed | {cand.name})
        if fitted is None:
            skipped.append(f"{cand.name} (its instances fit nowhere else)")
            continue
        new_moves, views = fitted
        moves += new_moves
        closed.add(cand.name)
        received |= {m.dst for m in new_moves}
    emptied = tuple(h for h in (c.name for c in hosts) if h in closed)
    if moves:
        reason = f"empty {', '.join(emptied)} by moving {len(moves)} instance(s)"
    else:
        reason = "no host can be emptied"
    if skipped:
        reason += "; kept " + ", ".join(skipped)
    return ConsolidationPlan(tuple(moves), emptied, reason)


@dataclass(frozen=True, slots=True)
class DrainPlan:
    moves: tuple[Move, ...]
    stuck: tuple[str, ...]  # instances no other host can take now (they stay, serving)
    reasons: tuple[str, ...]  # one placement explanation per instance


def plan_drain(
    host: str,
    hosts: Sequence[HostView],
    instances: Sequence[Placed],
    *,
    strategy: Strategy = "spread",
    spread_label: str = "zone",
) -> DrainPlan:
    """Destinations for every instance on ``host`` (the draining host itself takes nothing)."""
    views = {h.name: h for h in hosts}
    if host in views:
        views[host] = replace(views[host], draining=True, cordoned=True)
    moves: list[Move] = []
    stuck: list[str] = []
    reasons: list[str] = []
    leaving = sorted((i for i in instances if i.host == host), key=lambda i: (-i.memory_mb, -i.vcpus, i.name))
    for inst in leaving:
        p = place(
            Request(inst.name, inst.vcpus, inst.memory_mb),
            list(views.values()),
            strategy=strategy,
            spread_label=spread_label,
        )
        reasons.append(p.reason)
        if p.host is None:
            stuck.append(inst.name)
            continue
        views[p.host] = views[p.host].with_instance(inst.vcpus, inst.memory_mb)
        moves.append(Move(inst.name, host, p.host))
    return DrainPlan(tuple(moves), tuple(stuck), tuple(reasons))
