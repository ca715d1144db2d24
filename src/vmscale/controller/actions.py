"""The controller's hands: each action on one instance is recorded in the fleet first, then handed to
the provider as an asynchronous call (see ``operations``).

Recording first is what makes a crash at any point recoverable: an instance is ``pending`` in the
store before the provider is asked to launch it, and ``terminating`` before it is asked to remove
it, so restart recovery can finish or undo the step (``recovery.py``). A resize is recorded at its
new size before the provider is asked (the vCPUs count as capacity on their way from then on); the
provider's own listing corrects the record if the call never completes.

It is also what fences the step (``fence.py``): every action first checks that this controller still
leads (``Operations.check``, on the monotonic clock), and its record goes through the fenced store,
which refuses it once another controller has taken over; an action that has no record in front of
its call (a park, a repeated terminate, the user's hooks) asks the store instead
(``Operations.confirm``). ``Operations`` checks once more in the worker, right before the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from vmscale.clock import Clock
from vmscale.controller.backoff import Backoff
from vmscale.controller.fleet import Facts, Fleet, Instance, Purpose, Timers, Transit
from vmscale.controller.membership import Membership
from vmscale.controller.operations import PREPARE_KEY, Operations, OpKind
from vmscale.event_kinds import InstanceResized, ResizeStage
from vmscale.hooks import HookSubject, LifecycleHooks
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
        hooks: LifecycleHooks | None = None,
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
        self.hooks = hooks

    def new_timers(self, launched: float) -> Timers:
        """Timers of a new or adopted record (the terminate back-off starts clean)."""
        return Timers(terminate=self._retry, launched=launched)

    def launch(self, *, pool: bool, wanted_at: float | None) -> Instance:
        self._ops.check("launch")
        now, mono = self._clock.now(), self._clock.monotonic()
        index = self._fleet.free_index()
        name = f"{self._group}-{index}"
        spec = replace(self._make_spec(name, index), epoch=self._ops.epoch)  # the provider keeps it
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
        self._ops.check("resume")
        inst.timers.wanted_at = wanted_at
        self._fleet.take_from_pool(inst, "taken from the warm pool")
        self._ops.start(inst.name, OpKind.RESUME, self._clock.monotonic(), pool.resume, inst.name)

    def resize(self, inst: Instance, vcpus: int, reason: str, wanted_at: float | None) -> None:
        """Resize a ready instance live. It keeps serving; the new vCPUs count from now, and are
        followed until the workload reports them (``Transit``)."""
        resizer = self._roles.resizer
        assert resizer is not None, "only a provider with the resizer role is asked to resize"
        before, now = inst.facts.vcpus, self._clock.monotonic()
        inst.timers.resize = Transit(before, vcpus, now, wanted_at)
        self._fleet.resized(inst, InstanceResized(inst.name, ResizeStage.STARTED, before, vcpus, reason))
        self._ops.start(inst.name, OpKind.RESIZE, now, resizer.resize, inst.name, vcpus)

    def prepare(self) -> bool:
        """Have the provider make the group's golden snapshot now, on a worker (the group serves
        meanwhile). False when the provider boots every instance (nothing to prepare)."""
        cloner = self._roles.cloner
        key = PREPARE_KEY + self._group
        if cloner is None or not cloner.restores_clones() or self._ops.busy(key):
            return False
        spec = self._make_spec(f"{self._group}-golden", 0)
        self._ops.start(key, OpKind.PREPARE, self._clock.monotonic(), cloner.prepare, spec)
        return True

    def park(self, inst: Instance, kind: WarmKind) -> None:
        pool = self._roles.warm_pool
        assert pool is not None, "only a provider with a warm-pool role parks instances"
        self._ops.confirm("pause")  # nothing is recorded before a park: ask the store
        self._ops.start(inst.name, OpKind.PAUSE, self._clock.monotonic(), pool.pause, inst.name, kind)

    def drain(self, inst: Instance, reason: str) -> None:
        self._ops.check("drain")
        self._fleet.move(inst, S.DRAINING, reason)
        self._membership.drain(inst)
        # The grace counts from when the balancer was told, not from the tick's start: probes and
        # sampling earlier in the tick may already have used it up.
        inst.timers.drain_started = self._clock.monotonic()

    def subject(self, inst: Instance) -> HookSubject:
        return HookSubject(
            self._group, inst.name, inst.facts.endpoint, inst.facts.details.get("host", "local")
        )

    def run_launch_hooks(self, inst: Instance) -> bool:
        """Start the launch hooks of a healthy new instance (it stays out of rotation until they
        answer); False when there are none."""
        if self.hooks is None or not self.hooks.has("launch"):
            return False
        self._ops.confirm("launch hooks")  # a call to the user's systems, with no record before it
        future = self.hooks.submit("launch", self.subject(inst))
        self._ops.track(inst.name, OpKind.LAUNCH_HOOK, self._clock.monotonic(), future)
        return True

    def terminate(self, inst: Instance, reason: str) -> None:
        """Stop an instance. One that served gets its terminate hooks first: it leaves rotation,
        the hooks run, and ``destroy`` follows when they answer (whatever they answer)."""
        if self._ops.busy(inst.name):
            return
        served = inst.ready_at is not None and inst.state in (S.READY, S.DRAINING, S.FAILED)
        if served and self.hooks is not None and self.hooks.has("terminate"):
            self._ops.confirm("terminate hooks")  # no record precedes them either
            self._membership.remove(inst)
            future = self.hooks.submit("terminate", self.subject(inst))
            self._ops.track(inst.name, OpKind.TERMINATE_HOOK, self._clock.monotonic(), future)
            return
        self.destroy(inst, reason)

    def destroy(self, inst: Instance, reason: str) -> None:
        """Stop an instance now, without hooks (after them, or when the whole group stops)."""
        if self._ops.busy(inst.name):
            return
        self._ops.check("terminate")
        if inst.state is not S.TERMINATING:
            self._fleet.move(inst, S.TERMINATING, reason)
        else:  # a retry: no record precedes this call, so ask the store
            self._ops.confirm("terminate")
        self._membership.remove(inst)
        call = partial(self._roles.lifecycle.terminate, graceful_timeout_s=self._terminate_timeout_s)
        self._ops.start(inst.name, OpKind.TERMINATE, self._clock.monotonic(), call, inst.name)

    def fail(self, inst: Instance, reason: str) -> None:
        self._ops.check("fail")
        self._fleet.move(inst, S.FAILED, reason)
        self._membership.remove(inst)
