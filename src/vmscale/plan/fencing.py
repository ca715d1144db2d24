"""Which copy of an instance survives when a host that was lost comes back with it. Pure.

How two copies of one name can exist: a host stops answering (its libvirtd died, its network
broke) while its guests keep running; after the grace period the controller replaces its instances
elsewhere. Replacements get *new* names, so normally the returning host only brings back instances
the controller has already given up on, which it terminates. Two copies of the *same* name appear
only if a launch of that name was retried on another host while the first host could not be asked
(or a person started one by hand).

The rule (the controller applies it when a host becomes reachable again, before anything else):

1. **The controller's record wins.** The store says on which host each instance was launched (and
   a migration updates it). The copy on that host is kept; every other copy is destroyed without
   being adopted, its disk deleted. It is never put into the balancer: the balancer only ever gets
   the recorded copy's endpoint.
2. **Without a record** (the store was lost, or the name is not the group's any more): the copy
   launched last wins. The older copy is the one whose host was given up on.
3. **Ties** (same launch time, which libvirt metadata makes unlikely) go to the host whose name
   sorts first, so two controllers reading the same facts always decide the same.

An instance whose only copy is on an unreachable host is not "gone": the provider reports it as
unknown, terminating it raises a temporary error until the host answers, and its name (and, with
vmscale-assigned addresses, its address) is not reused until then — otherwise the returning copy
and a new instance of the same name would share one address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Copy:
    host: str
    created_at: float  # from the domain's vmscale metadata (epoch seconds)


@dataclass(frozen=True, slots=True)
class FenceDecision:
    keep: Copy | None
    remove: tuple[Copy, ...]
    reason: str


def choose_copy(name: str, copies: Sequence[Copy], *, recorded_host: str | None) -> FenceDecision:
    """Apply the rule above to every copy of ``name`` found on reachable hosts."""
    if not copies:
        return FenceDecision(None, (), f"{name}: no copy found")
    recorded = [c for c in copies if c.host == recorded_host]
    if recorded:
        keep = recorded[0]
        why = f"the record says {recorded_host}"
    else:
        keep = sorted(copies, key=lambda c: (-c.created_at, c.host))[0]
        why = "no copy on the recorded host; the newest launch wins" if recorded_host else "newest launch"
    remove = tuple(c for c in copies if c is not keep)
    if not remove:
        return FenceDecision(keep, (), f"{name}: one copy, on {keep.host}")
    gone = ", ".join(c.host for c in remove)
    return FenceDecision(
        keep, remove, f"{name}: keep the copy on {keep.host} ({why}); destroy the one on {gone}"
    )
