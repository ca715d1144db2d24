"""Hosts that stop answering, and what they still run when they answer again.

Every full tick ``SilentHosts.observe`` reads the provider's listing (``Reconciler.observe`` hands it
on) and the inventory's reachability:

* **Silent.** An instance listed ``UNKNOWN`` (its host does not answer) leaves rotation at once: it
  becomes ``unknown`` (the balancer drains it, so requests it is serving can finish: its guest
  usually still runs). It still counts toward the group, so a host that answers again within the
  grace period costs no replacement.
* **Unreachable.** Once its host has been silent for ``cluster.unreachable_after_s`` it fails, and the
  scale plan launches a replacement on another host, under a new name. Its record stays, failed and
  then terminating, so neither its name nor (with assigned addresses) its address is reused: the
  terminate is refused while the host is silent and retried with back-off.
* **Back.** When the host answers: an ``unknown`` instance still there goes back to where it was
  (ready, booting, or parked); one that is not there failed; a failed one there is terminated at
  once (its back-off is reset); a name with copies on several answering hosts is fenced by
  ``plan.fencing.choose_copy`` (the controller's record wins; the other copy is destroyed on its
  host alone, never adopted); an instance found on another host than recorded has its record
  updated.

It also announces each host's reachability changes (not answering, unreachable, up again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from vmscale.controller.actions import Actions
from vmscale.controller.fleet import Facts, Fleet, Instance, Purpose
from vmscale.controller.host_events import HostChanged
from vmscale.controller.operations import Operations, OpKind, OpResult
from vmscale.controller.records import StoreRecorder
from vmscale.controller.reporting import ErrorReporter
from vmscale.event_kinds import Publish
from vmscale.hosts.role import HostsRole
from vmscale.hosts.values import HostStatus
from vmscale.hosts.watch import Reach
from vmscale.model import InstanceState
from vmscale.plan.fencing import choose_copy
from vmscale.providers.base import ProviderInstance, ProviderStatus

S = InstanceState
UNREACHABLE = Reach.UNREACHABLE.value


def host_of(inst: Instance) -> str:
    return inst.facts.details.get("host", "")


class SilentHosts:
    def __init__(
        self,
        fleet: Fleet,
        ops: Operations,
        actions: Actions,
        hosts: HostsRole,
        recorder: StoreRecorder,
        publish: Publish,
        report: ErrorReporter,
        *,
        grace_s: float,
        terminate_timeout_s: float,
    ) -> None:
        self._fleet = fleet
        self._ops = ops
        self._actions = actions
        self._hosts = hosts
        self._recorder = recorder
        self._publish = publish
        self._report = report
        self._grace_s = grace_s
        self._terminate_timeout_s = terminate_timeout_s
        self._states: dict[str, str] = {}  # host -> its state at the last refresh

    # ------------------------------------------------------------------ hosts
    def announce(self, statuses: Sequence[HostStatus]) -> None:
        """Publish each host whose reachability changed since the last refresh."""
        for st in statuses:
            before, now = self._states.get(st.name), st.reach.value
            self._states[st.name] = now
            first_contact = before == Reach.UNKNOWN.value and st.reach is Reach.UP
            if before is None or before == now or first_contact:
                continue
            if st.reach is Reach.NOT_ANSWERING:
                msg = (
                    f"{st.name} is not answering ({st.error}): its instances leave rotation, and are "
                    f"replaced if it stays silent for {self._grace_s:g} s"
                )
            elif st.reach is Reach.UNREACHABLE:
                msg = f"{st.name} is unreachable (silent for {self._grace_s:g} s): its instances are replaced"
            else:
                msg = f"{st.name} answers again"
            self._publish(HostChanged(st.name, now.replace(" ", "-"), msg))

    # ------------------------------------------------------------------ instances
    def observe(self, listed: Mapping[str, ProviderInstance], answering: frozenset[str], now: float) -> None:
        for inst in self._fleet:
            if self._ops.busy(inst.name):
                continue
            p = listed.get(inst.name)
            if inst.state is S.UNKNOWN:
                self._unknown(inst, p)
            elif p is not None and p.status is ProviderStatus.UNKNOWN:
                self._silent(inst, p)
            elif p is not None:
                self._seen(inst, p, answering, now)

    def _silent(self, inst: Instance, p: ProviderInstance) -> None:
        host = p.details.get("host", "?")
        if inst.state not in (S.BOOTING, S.READY, S.WARM):
            return  # failed, draining or terminating ones go on as they were (their calls retry)
        if p.details.get("host_state") == UNREACHABLE:
            self._actions.fail(inst, self._given_up(inst.name, host))
            return
        self._fleet.move(
            inst,
            S.UNKNOWN,
            f"its host {host} is not answering: out of rotation; replaced if {host} stays silent "
            f"for {self._grace_s:g} s (cluster.unreachable_after_s)",
        )

    def _given_up(self, name: str, host: str) -> str:
        return (
            f"its host {host} has not answered for {self._grace_s:g} s (cluster.unreachable_after_s): "
            f"replaced on another host; {name} and its address stay reserved until {host} answers and "
            "the copy there is removed"
        )

    def _unknown(self, inst: Instance, p: ProviderInstance | None) -> None:
        host = host_of(inst)
        if p is None:
            self._actions.fail(inst, f"vanished: its host {host} answers again and does not have it")
        elif p.status is ProviderStatus.UNKNOWN:
            if p.details.get("host_state") == UNREACHABLE:
                self._actions.fail(inst, self._given_up(inst.name, host))
        elif p.status is ProviderStatus.STOPPED:
            self._actions.fail(inst, f"its host {host} answers again, and reports it stopped")
        else:
            back = S.WARM if inst.purpose is Purpose.POOL else S.READY if inst.ready_at else S.BOOTING
            self._fleet.move(inst, back, f"its host {host} answers again: {back.value} as before")

    def _seen(self, inst: Instance, p: ProviderInstance, answering: frozenset[str], now: float) -> None:
        if inst.state in (S.FAILED, S.TERMINATING) and inst.timers.terminate.failures:
            # Its host answers (again): remove it now rather than at the end of a long back-off.
            inst.timers.terminate = inst.timers.terminate.succeeded()
        if "duplicate_on" in p.details:
            self._fence(inst, answering, now)
            return
        where = p.details.get("host")
        if where and where != host_of(inst):
            was = host_of(inst) or "no host"
            inst.facts = Facts(inst.facts.endpoint or p.endpoint, inst.facts.vcpus, dict(p.details))
            self._recorder.save(inst)
            self._publish(
                HostChanged(
                    where, "found", f"{inst.name} runs on {where} (recorded on {was})", instance=inst.name
                )
            )

    def _fence(self, inst: Instance, answering: frozenset[str], now: float) -> None:
        copies = [c for c in self._hosts.copies(inst.name) if c.host in answering]
        if len(copies) < 2:
            return  # a copy is on a silent host: the rule is applied once it answers
        decision = choose_copy(inst.name, copies, recorded_host=host_of(inst) or None)
        victim = decision.remove[0]
        call = partial(
            self._hosts.terminate, inst.name, graceful_timeout_s=self._terminate_timeout_s, host=victim.host
        )
        self._ops.start(inst.name, OpKind.FENCE, now, call)
        self._publish(HostChanged(victim.host, "fenced", decision.reason, instance=inst.name))

    def fenced(self, r: OpResult) -> None:
        if r.error is not None:
            self._report.provider_error("fence", r.error, r.name)
