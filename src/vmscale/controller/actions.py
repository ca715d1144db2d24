"""The controller's hands: each action on one instance is recorded in the fleet first, then handed to
the provider as an asynchronous call (see ``operations``).

Recording first is what makes a crash at any point recoverable: an instance is ``pending`` in the
store before the provider is asked to launch it, and ``terminating`` before it is asked to remove
it, so restart recovery can finish or undo the step (``recovery.py``).

It is also what fences the step (``fence.py``): every action first checks that this controller still
leads (``Fence.check``, on the monotonic clock), and its record goes through the fenced store, which
refuses it once another controller has taken over; an action that has no record in front of its
call (a park, a repeated terminate) asks the store instead (``Fence.confirm``). The provider roles
it calls are themselves fenced (``fenced_roles``) and check again in the worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from vmscale.clock import Clock
from vmscale.controller.backoff import Backoff
from vmscale.controller.fence import Fence
from vmscale.controller.fleet import Facts, Fleet, Instance, Purpose, Timers
from vmscale.controller.membership import Membership
from vmscale.controller.operations import Operations, OpKind
from vmscale.model import InstanceState
from vmscale.providers.base import InstanceSpec, ProviderRoles, WarmKind

S = InstanceState

SpecFactory = Callable[[str, int], InstanceSpec]  # (name, index) -> what to launch


class Actions:
    def __init__(
        self,
        fleet: Fleet,
        ops: Operations,
        roles: ProviderRoles,
        membership: Membership,
        clock: Clock,
        *,
        group: str,
        make_spec: SpecFactory,
        terminate_timeout_s: float,
        retry: Backoff,
        fence: Fence,
    ) -> None:
        self._fleet = fleet
        self._ops = ops
        self._roles = roles
        self._membership = membership
        self._clock = clock
        self._group = group
        self._make_spec = make_spec
        self._terminate_timeout_s = terminate_timeout_s
        self._retry = retry
        self._fence = fence

    def new_timers(self, launched: float) -> Timers:
        """Timers of a new or adopted record (the terminate back-off starts clean)."""
        return Timers(terminate=self._retry, launched=launched)

    def launch(self, *, pool: bool, wanted_at: float | None) -> Instance:
        self._fence.check("launch")
        now, mono = self._clock.now(), self._clock.monotonic()
        index = self._fleet.free_index()
        name = f"{self._group}-{index}"
        spec = self._make_spec(name, index)
        timers = self.new_timers(mono)
        timers.wanted_at = None if pool else wanted_at
        inst = Instance(
            name,
            index,
            S.PENDING,
            timers,
            purpose=Purpose.POOL if pool else Purpose.GROUP,
            facts=Facts(vcpus=spec.vcpus),
            launched_at=now,
        )
        self._fleet.add(inst, "warm-pool launch requested" if pool else "launch requested")
        self._ops.start(name, OpKind.LAUNCH, mono, self._roles.lifecycle.launch, spec)
        return inst

    def resume(self, inst: Instance, wanted_at: float | None) -> None:
        """Take a parked instance from the warm pool: it joins the group at once (as ``resuming``)."""
        pool = self._roles.warm_pool
        assert pool is not None, "only a provider with a warm-pool role parks instances"
        self._fence.check("resume")
        inst.timers.wanted_at = wanted_at
        self._fleet.take_from_pool(inst, "taken from the warm pool")
        self._ops.start(inst.name, OpKind.RESUME, self._clock.monotonic(), pool.resume, inst.name)

    def park(self, inst: Instance, kind: WarmKind) -> None:
        pool = self._roles.warm_pool
        assert pool is not None, "only a provider with a warm-pool role parks instances"
        self._fence.confirm("pause")  # nothing is recorded before a park: ask the store
        self._ops.start(inst.name, OpKind.PAUSE, self._clock.monotonic(), pool.pause, inst.name, kind)

    def drain(self, inst: Instance, reason: str) -> None:
        self._fence.check("drain")
        self._fleet.move(inst, S.DRAINING, reason)
        self._membership.drain(inst)
        # The grace counts from when the balancer was told, not from the tick's start: probes and
        # sampling earlier in the tick may already have used it up.
        inst.timers.drain_started = self._clock.monotonic()

    def terminate(self, inst: Instance, reason: str) -> None:
        if self._ops.busy(inst.name):
            return
        self._fence.check("terminate")
        if inst.state is not S.TERMINATING:
            self._fleet.move(inst, S.TERMINATING, reason)
        else:  # a retry: no record precedes this call, so ask the store
            self._fence.confirm("terminate")
        self._membership.remove(inst)
        call = partial(self._roles.lifecycle.terminate, graceful_timeout_s=self._terminate_timeout_s)
        self._ops.start(inst.name, OpKind.TERMINATE, self._clock.monotonic(), call, inst.name)

    def fail(self, inst: Instance, reason: str) -> None:
        self._fence.check("fail")
        self._fleet.move(inst, S.FAILED, reason)
        self._membership.remove(inst)
