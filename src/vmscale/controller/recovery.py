"""Restart reconciliation: make the controller's table agree with what really exists.

On start the controller trusts the provider over its own database, Kubernetes-style:

* recorded and present at the provider   -> adopted in the state it had (ready stays in rotation;
                                            booting/pending are health-checked again; draining
                                            drains on; terminating is terminated again)
* recorded but absent at the provider    -> the launch never completed or the instance died: gone
                                            (the group's desired count brings a replacement)
* present at the provider but not recorded -> an orphan: found and removed by the first tick
* a recorded ``pending`` that does exist -> the launch completed but the crash came before it was
                                            recorded: adopted as booting
* a recorded ``resuming``                -> running: booting; still parked: the resume is issued again
* present but its host does not answer  -> ``unknown`` (out of rotation; see hosts_step.py)

Desired count, pause flag and policy state come back from the database, clamped to [min, max].
Names stay deterministic, so nothing is launched twice and the count never exceeds max.
"""

from __future__ import annotations

from vmscale.controller.actions import Actions
from vmscale.controller.autoscaler import Autoscaler
from vmscale.controller.fleet import Facts, Fleet, Instance, Purpose
from vmscale.controller.records import StoreRecorder
from vmscale.controller.reporting import ErrorReporter
from vmscale.errors import ProviderError
from vmscale.model import InstanceState
from vmscale.providers.base import Lifecycle, ProviderInstance, ProviderStatus
from vmscale.store import InstanceRow

S = InstanceState


def recover(
    group: str,
    recorder: StoreRecorder,
    lifecycle: Lifecycle,
    fleet: Fleet,
    actions: Actions,
    autoscaler: Autoscaler,
    report: ErrorReporter,
    now: float,
) -> None:
    autoscaler.restore(recorder.load_group())
    try:
        listed: dict[str, ProviderInstance] | None = {p.name: p for p in lifecycle.list(group)}
    except ProviderError as exc:
        # Without the provider's view nothing can be adopted safely; the first tick retries with back-off.
        report.provider_error("list", exc, None)
        listed = None
    for row in recorder.instances():
        inst = _record(row, actions, now)
        fleet.adopt(inst, "recovery: found in the state database")
        if listed is not None:
            _reconcile(inst, listed.get(row.name), fleet, actions)
    autoscaler.save()


def _record(row: InstanceRow, actions: Actions, now: float) -> Instance:
    state = S(row.state)
    purpose = Purpose.POOL if row.warm else Purpose.GROUP
    if state is S.WARM and purpose is Purpose.GROUP:
        state = S.RESUMING  # how a database written before the explicit state recorded a resume
    return Instance(
        row.name,
        row.index,
        state,
        actions.new_timers(now),
        purpose=purpose,
        facts=Facts(row.endpoint, row.vcpus, dict(row.details)),
        launched_at=row.launched_at,
        ready_at=row.ready_at,
    )


def _reconcile(inst: Instance, p: ProviderInstance | None, fleet: Fleet, actions: Actions) -> None:
    state = inst.state
    if p is not None and p.status is ProviderStatus.STOPPED:
        actions.terminate(inst, "recovery: stopped at the provider")
        return
    if p is None:
        if state is S.PENDING:
            fleet.move(inst, S.FAILED, "recovery: the launch never completed")
        elif state not in (S.TERMINATING, S.FAILED):
            fleet.move(inst, S.FAILED, "recovery: vanished while the controller was down")
        fleet.move(inst, S.GONE, "recovery: not at the provider")
        return
    if not inst.facts.endpoint:
        inst.facts = Facts(p.endpoint, inst.facts.vcpus, inst.facts.details)
    if p.status is ProviderStatus.UNKNOWN:
        _silent_host(inst, p, fleet)
    elif state is S.PENDING:
        fleet.move(inst, S.BOOTING, "recovery: the launch had completed")
    elif state is S.WARM and p.status is ProviderStatus.RUNNING:
        fleet.move(inst, S.BOOTING, "recovery: a parked instance was running; checking it")
    elif state is S.RESUMING and p.status is ProviderStatus.RUNNING:
        fleet.move(inst, S.BOOTING, "recovery: the resume had completed")
    elif state is S.RESUMING:
        actions.resume(inst, wanted_at=None)
    elif state in (S.FAILED, S.TERMINATING):
        actions.terminate(inst, "recovery: finishing a terminate")


def _silent_host(inst: Instance, p: ProviderInstance, fleet: Fleet) -> None:
    """Its host does not answer: out of rotation until it does (the host step decides the rest)."""
    why = f"recovery: its host {p.details.get('host', '?')} does not answer"
    if inst.state is S.PENDING:
        fleet.move(inst, S.BOOTING, "recovery: the launch had completed")
    if inst.state in (S.BOOTING, S.READY, S.WARM):
        fleet.move(inst, S.UNKNOWN, why)
    elif inst.state is S.RESUMING:  # nothing can resume it there now: a replacement takes its place
        fleet.move(inst, S.FAILED, why)
