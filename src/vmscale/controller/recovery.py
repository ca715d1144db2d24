"""Restart reconciliation: make the controller's table agree with what really exists.

On start the controller trusts the provider over its own database, Kubernetes-style:

* recorded and present at the provider   -> adopted in the state it had (ready stays in rotation;
                                            booting/pending are health-checked again; draining
                                            drains on; terminating is terminated again)
* recorded but absent at the provider    -> the launch never completed or the instance died: gone
                                            (the group's desired count brings a replacement)
* present at the provider but not recorded -> an orphan: terminated on the first tick
* a recorded ``pending`` that does exist -> the launch completed but the crash came before it was
                                            recorded: adopted as booting

Desired count, pause flag and policy state come back from the database, clamped to [min, max].
Names stay deterministic, so nothing is launched twice and the count never exceeds max.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmscale.controller import act
from vmscale.controller.managed import Managed
from vmscale.errors import ProviderError
from vmscale.model import InstanceState
from vmscale.policy import PolicySetState
from vmscale.providers.base import ProviderStatus

if TYPE_CHECKING:
    from vmscale.controller.core import Controller

S = InstanceState


def recover(c: Controller) -> None:
    now = c.clock.now()
    row = c.store.load_group(c.group_name)
    if row is not None:
        c.desired = max(c.cfg.group.min, min(c.cfg.group.max, row.desired))
        c.paused = row.paused
        try:
            c.policy_state = PolicySetState.from_dict(row.policy_state)
        except (KeyError, TypeError, ValueError):
            c.policy_state = c.policies.initial_state()  # a policy change since the last run: start afresh
    try:
        listed = {p.name: p for p in c.provider.list(c.group_name)}
    except ProviderError as exc:
        # Without the provider's view nothing can be adopted safely; the first tick retries with back-off.
        c._provider_error("list", exc, None)
        listed = None
    for r in c.store.instances(c.group_name):
        state = S(r.state)
        m = Managed(
            name=r.name,
            index=r.index,
            state=state,
            vcpus=r.vcpus,
            endpoint=r.endpoint,
            warm=r.warm,
            launched_at=r.launched_at,
            ready_at=r.ready_at,
            state_since=now,
            details=dict(r.details),
        )
        c.table[m.name] = m
        if listed is None:
            continue
        p = listed.get(r.name)
        alive = p is not None and p.status is not ProviderStatus.STOPPED
        if not alive:
            if state in (S.PENDING, S.TERMINATING, S.FAILED) and p is None:
                c._set_state(m, S.GONE, now, "recovery: not at the provider")
            elif p is not None:
                act.terminate(c, m, now, "recovery: stopped at the provider")
                continue
            else:
                c._fail(m, now, "recovery: vanished while the controller was down")
                c._set_state(m, S.TERMINATING, now, "recovery: cleaning up")
                c._set_state(m, S.GONE, now, "recovery: not at the provider")
            del c.table[m.name]
            continue
        assert p is not None
        m.endpoint = m.endpoint or p.endpoint
        if state is S.PENDING:
            c._set_state(m, S.BOOTING, now, "recovery: the launch had completed")
        elif state is S.WARM and p.status is ProviderStatus.RUNNING:
            c._set_state(m, S.BOOTING, now, "recovery: a warm instance was running; checking it")
            m.warm = True
        elif state in (S.FAILED, S.TERMINATING):
            act.terminate(c, m, now, "recovery: finishing a terminate")
        c._emit_instance(m, m.state.value, "recovery: adopted")
    c._save_group(now)
