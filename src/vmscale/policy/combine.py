"""Several policies, one decision.

Rules (the AWS/HPA convention, conservative about removing capacity):

* the **largest scale-up wins**: if any policy proposes more than the current count, the highest such
  proposal is taken;
* **scale-in only if every voting policy agrees**: each voter proposes fewer than now; the largest of
  those proposals is taken (the smallest step down);
* a policy may **abstain** (``desired=None``: a threshold without a lower bound, a schedule) and may
  set a **floor** (the schedule's minimum), applied last;
* the result is always within the group's ``[min, max]``.

The reason names the winner and quotes every policy's own reason, so a log line answers "why".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vmscale.model import Decision, Figures, ReasonCode, Snapshot, direction_of
from vmscale.policy.base import Observation, Policy, PolicyState, Proposal, ScaleEvent, observe

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class PolicySetState:
    """Everything the set remembers: each policy's state and the recent scale events it decided."""

    policies: tuple[tuple[str, PolicyState], ...] = ()
    events: tuple[ScaleEvent, ...] = ()

    def get(self, name: str) -> PolicyState:
        for n, s in self.policies:
            if n == name:
                return s
        return PolicyState()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "policies": {n: s.to_dict() for n, s in self.policies},
            "events": [[t, d] for t, d in self.events],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicySetState:
        """Inverse of ``to_dict``. Unknown future versions start afresh rather than misreading."""
        if d.get("version", STATE_VERSION) != STATE_VERSION:
            return cls()
        return cls(
            policies=tuple(
                (str(n), PolicyState.from_dict(s)) for n, s in dict(d.get("policies", {})).items()
            ),
            events=tuple((float(t), int(delta)) for t, delta in d.get("events", ())),
        )


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[Policy, ...]
    min_count: int
    max_count: int
    horizon_s: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizon_s", max((p.horizon_s for p in self.policies), default=0.0))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.policies]

    def initial_state(self) -> PolicySetState:
        return PolicySetState(policies=tuple((p.name, PolicyState()) for p in self.policies))

    def decide(self, snapshot: Snapshot, state: PolicySetState) -> tuple[Decision, PolicySetState]:
        """One decision from a full snapshot (what the controller calls). Pure."""
        return self.decide_observed(observe(snapshot), state)

    def decide_observed(self, obs: Observation, state: PolicySetState) -> tuple[Decision, PolicySetState]:
        """One decision from an already reduced observation (what the simulator calls)."""
        events = state.events
        votes: list[tuple[str, Proposal]] = []
        states: list[tuple[str, PolicyState]] = []
        for policy in self.policies:
            proposal, pstate = policy.decide(obs, state.get(policy.name), events)
            votes.append((policy.name, proposal))
            states.append((policy.name, pstate))
        desired, winner, reason = combine(obs.desired, votes)
        # The snapshot's bounds are the ones in force (an operator may change them at run time);
        # the set's own min/max are what the simulator and the defaults use.
        lo, hi = obs.min_count, max(obs.min_count, obs.max_count)
        bounded = max(lo, min(hi, desired))
        code = outcome_code(obs.desired, desired, winner, votes)
        if bounded != desired:
            reason += f"; bounded to [{lo}, {hi}] -> {bounded}"
            code = ReasonCode.LIMITED_MAX if bounded < desired else ReasonCode.LIMITED_MIN
        if bounded != obs.desired:
            events = (*events, (obs.now, bounded - obs.desired))
        cutoff = obs.now - self.horizon_s
        if events and events[0][0] <= cutoff:
            events = tuple(e for e in events if e[0] > cutoff)
        figures = next((p.figures for n, p in votes if n == winner), Figures())
        decision = Decision(
            desired=bounded,
            direction=direction_of(obs.desired, bounded),
            reason=reason,
            policy=winner,
            current=obs.desired,
            figures=figures,
            code=code,
        )
        return decision, PolicySetState(policies=tuple(states), events=events)


def outcome_code(
    current: int, desired: int, winner: str, votes: Sequence[tuple[str, Proposal]]
) -> ReasonCode:
    """The set's reason code: a veto of a scale-in, else the deciding policy's own code."""
    downs = [p for _, p in votes if p.desired is not None and p.desired < current]
    if desired == current and downs and winner not in {n for n, p in votes if p in downs}:
        voters = [p for _, p in votes if p.desired is not None]
        if len(downs) < len(voters):
            return ReasonCode.SCALE_IN_VETOED
    return next((p.code for n, p in votes if n == winner), ReasonCode.NO_OPINION)


def combine(current: int, votes: Sequence[tuple[str, Proposal]]) -> tuple[int, str, str]:
    """(desired, winning policy, reason) from the votes; see the module docstring for the rules."""
    voters = [(n, p) for n, p in votes if p.desired is not None]
    ups = [(p.desired, n) for n, p in voters if p.desired is not None and p.desired > current]
    downs = [(p.desired, n) for n, p in voters if p.desired is not None and p.desired < current]
    if ups:
        desired, winner = max(ups, key=lambda x: x[0])
        verdict = f"scale-up {current}->{desired} by {winner}" + (
            " (largest of the scale-ups)" if len(ups) > 1 else ""
        )
    elif downs and len(downs) == len(voters):
        desired, winner = max(downs, key=lambda x: x[0])
        verdict = f"scale-in {current}->{desired} by {winner}" + (
            " (all agree; smallest step)" if len(downs) > 1 else ""
        )
    else:
        desired, winner = current, ""
        blockers = [n for n, p in voters if p.desired is not None and p.desired >= current]
        verdict = f"hold at {current}"
        if downs:
            verdict += f" (scale-in needs every policy; {', '.join(blockers)} disagree)"
    floor, floor_by = max(((p.floor, n) for n, p in votes), default=(0, ""), key=lambda x: x[0])
    if floor > desired:
        verdict = (
            f"scale-up {current}->{floor} by {floor_by} (scheduled minimum)"
            if floor > current
            else (f"hold at {current}: {floor_by} keeps at least {floor}")
        )
        desired, winner = floor, floor_by
    if not winner:
        winner = votes[0][0] if len(votes) == 1 else "none"
    details = "; ".join(f"{n}: {p.reason}" for n, p in votes)
    return desired, winner, f"{verdict} — {details}" if votes else verdict
