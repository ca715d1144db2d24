"""Steps 1 and 6 of a tick: collect finished provider calls, and act on the desired count.

Acting means resuming parked instances before launching new ones, choosing what a scale-in stops
(not-yet-serving instances first, then the least busy), refilling the warm pool once the group
is where it should be, and retrying terminations. Provider calls are submitted to the executor
and never awaited here: their results come back through ``collect_ops`` on a later tick.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from vmscale.controller import balancer
from vmscale.controller.managed import Managed
from vmscale.errors import InstanceNotFoundError, LoadBalancerError, PermanentProviderError
from vmscale.model import InstanceState
from vmscale.providers.base import InstanceSpec

if TYPE_CHECKING:
    from vmscale.controller.core import Controller

S = InstanceState


def collect_ops(ctl: Controller, now: float) -> None:
    """Move each instance whose provider call finished on: launched -> booting, terminated -> gone,
    parked -> warm, resumed -> booting; a failure backs off and fails the instance."""
    for m in list(ctl.table.values()):
        if m.op is None or not m.op.done():
            continue
        fut, kind = m.op, m.op_kind
        m.op, m.op_kind = None, ""
        exc = fut.exception()
        if kind == "launch":
            launch_done(ctl, m, fut.result() if exc is None else None, exc, now)
        elif kind == "terminate":
            if exc is None or isinstance(exc, InstanceNotFoundError):
                ctl.metrics.terminate_seconds.labels(ctl.group_name).observe(now - m.op_started)
                ctl._set_state(m, S.GONE, now, "terminated")
                del ctl.table[m.name]
            else:
                backoff = ctl._backoff(2)
                m.retry_at = now + backoff
                ctl._provider_error("terminate", exc, m.name)
        elif kind == "pause":
            if exc is None:
                ctl._set_state(m, S.WARM, now, f"parked in the warm pool ({ctl.cfg.warm_pool.kind})")
            else:
                launch_failed(ctl, m, exc, now, "pause", "could not park for the warm pool")
        elif kind == "resume":
            if exc is None:
                m.health_failures = 0
                ctl._set_state(m, S.BOOTING, now, "resumed from the warm pool")
            else:
                launch_failed(ctl, m, exc, now, "resume", "could not resume from the warm pool")


def launch_done(ctl: Controller, m: Managed, inst: Any, exc: BaseException | None, now: float) -> None:
    if exc is not None:
        launch_failed(ctl, m, exc, now, "launch", "launch failed")
        return
    ctl.metrics.launch_seconds.labels(ctl.group_name).observe(now - m.op_started)
    m.endpoint = inst.endpoint
    m.details = dict(inst.details)
    m.vcpus = inst.vcpus
    ctl._set_state(m, S.BOOTING, now, f"started by the {ctl.provider.kind} provider")


def launch_failed(ctl: Controller, m: Managed, exc: BaseException, now: float, op: str, what: str) -> None:
    """Anything that was to bring capacity (launch, park, resume) failed: back off new launches
    exponentially (a permanent error waits the longest), report, and replace the instance."""
    ctl.launch_failures += 1
    delay = ctl._backoff(ctl.launch_failures - 1)
    if isinstance(exc, PermanentProviderError):
        delay = ctl.cfg.launch.backoff_max_s
    ctl.next_launch_at = now + delay
    ctl._provider_error(op, exc, m.name, retry_in_s=delay)
    ctl._fail(m, now, f"{what}: {exc}")


def apply_desired(ctl: Controller, now: float) -> None:
    """Make the group's size match ``ctl.desired``: take from the warm pool before launching, stop
    the right instances on scale-in, clean up failed ones, then refill the pool."""
    live = [m for m in ctl.table.values() if m.in_group]
    need = ctl.desired - len(live)
    if need > 0:
        for m in warm_ready(ctl)[:need]:
            m.warm = False
            m.wanted_at = ctl.last_scale_up_at or now
            start_op(ctl, m, "resume", ctl.provider.resume, m.name, now=now)
            ctl.store.put_instance(m.row(ctl.group_name), now)
            need -= 1
        for _ in range(need):
            if not launch(ctl, now, warm=False):
                break
    elif need < 0:
        for victim in scale_in_victims(ctl, -need):
            if victim.state is S.READY:
                start_drain(ctl, victim, now)
            else:
                terminate(ctl, victim, now, "scale-in before it was ready")
    for m in [m for m in ctl.table.values() if m.state is S.FAILED and not m.busy and now >= m.retry_at]:
        terminate(ctl, m, now, "cleaning up a failed instance")
    for m in [m for m in ctl.table.values() if m.state is S.TERMINATING and not m.busy and now >= m.retry_at]:
        start_op(ctl, m, "terminate", partial(terminate_call, ctl), m.name, now=now)
    # Refill the warm pool only when the group itself is where it should be, and only once the
    # capacity it is waiting for serves: on a small host a refill boot competes for the CPU
    # with the instance just resumed (a saved-pool restore took 1.3 s instead of 0.45 s with
    # a refill booting beside it).
    warm = [m for m in ctl.table.values() if m.warm and m.state in (S.PENDING, S.BOOTING, S.WARM)]
    arriving = any(m.in_group and m.state is not S.READY for m in ctl.table.values())
    if need <= 0 and not arriving:
        for _ in range(ctl.cfg.warm_pool.size - len(warm)):
            if not launch(ctl, now, warm=True):
                break


def warm_ready(ctl: Controller) -> list[Managed]:
    return sorted(
        (m for m in ctl.table.values() if m.warm and m.state is S.WARM and not m.busy),
        key=lambda m: m.index,
    )


def scale_in_victims(ctl: Controller, count: int) -> list[Managed]:
    """Not-yet-serving instances first (newest first), then the least busy ready ones.

    An instance whose launch or resume call is still running cannot be stopped this tick, but
    it is still the one to stop: it is counted as a victim to come, so that a ready, serving
    instance is not drained in its place.
    """
    coming = [m for m in ctl.table.values() if m.in_group and m.state is not S.READY]
    unready = sorted((m for m in coming if not m.busy), key=lambda m: -m.index)
    count -= len(coming) - len(unready)
    ready = sorted(
        (m for m in ctl.table.values() if m.state is S.READY and not m.busy),
        key=lambda m: (m.latest_cpu() if m.latest_cpu() is not None else 0.0, -m.index),
    )
    return (unready + ready)[: max(0, count)]


def launch(ctl: Controller, now: float, *, warm: bool) -> bool:
    if now < ctl.next_launch_at:
        return False
    index = free_index(ctl)
    name = f"{ctl.group_name}-{index}"
    m = Managed(
        name=name,
        index=index,
        state=S.PENDING,
        vcpus=ctl.cfg.template.vcpus,
        warm=warm,
        launched_at=now,
        state_since=now,
        wanted_at=None if warm else (ctl.last_scale_up_at or now),
    )
    ctl.table[name] = m
    # Recorded before the provider is asked, so a crash mid-launch is found and finished or undone.
    ctl.store.put_instance(m.row(ctl.group_name), now, src="(none)", reason="launch requested")
    ctl._emit_instance(m, "(none)", "warm-pool launch requested" if warm else "launch requested")
    spec = InstanceSpec(
        group=ctl.group_name,
        name=name,
        index=index,
        vcpus=ctl.cfg.template.vcpus,
        memory_mb=ctl.cfg.template.memory_mb,
        workload_args={"fib_max_n": str(ctl.cfg.template.fib_max_n)},
    )
    start_op(ctl, m, "launch", ctl.provider.launch, spec, now=now)
    return True


def free_index(ctl: Controller) -> int:
    used = {m.index for m in ctl.table.values()}
    i = 1
    while i in used:
        i += 1
    return i


def start_drain(ctl: Controller, m: Managed, now: float) -> None:
    ctl._set_state(
        m, S.DRAINING, now, f"scale-in: least busy ready instance (cpu {m.latest_cpu() or 0:.0f}%)"
    )
    if ctl.lb is not None:
        try:
            ctl.lb.drain(m.name)
        except LoadBalancerError as exc:
            ctl._error("lb.drain", str(exc), m.name)
    # The grace counts from now, when the balancer was told, not from the tick's start: health
    # probes and sampling earlier in the tick may already have used it up.
    m.drain_started = ctl.clock.now()


def terminate(ctl: Controller, m: Managed, now: float, reason: str) -> None:
    if m.busy:
        return
    balancer.remove_from_lb(ctl, m)
    if m.state is not S.TERMINATING:
        ctl._set_state(m, S.TERMINATING, now, reason)
    start_op(ctl, m, "terminate", partial(terminate_call, ctl), m.name, now=now)


def terminate_call(ctl: Controller, name: str) -> None:
    ctl.provider.terminate(name, graceful_timeout_s=ctl.cfg.launch.terminate_timeout_s)


def start_op(ctl: Controller, m: Managed, kind: str, fn: Any, *args: Any, now: float) -> None:
    """Run a provider call in the executor; its completion wakes the loop for a fast tick."""
    m.op_kind, m.op_started = kind, now
    m.op = ctl.executor.submit(fn, *args)
    m.op.add_done_callback(lambda _: ctl._wake.set())
