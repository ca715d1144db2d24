"""Live resizes after the provider call: from "the provider changed it" to "the workload serves with it".

A resize (``Actions.resize``) records the new size first, so the vCPUs count as capacity from the
decision on and nothing else is launched for the same demand. Then:

* the provider's call fails -> the record goes back to the old size, the failure is reported
  (with the resize back-off: a permanent error, e.g. no room to grow, waits longest);
* the instance's host has no headroom for the growth (``NoHeadroomError``) -> the same, but instead of
  the group's back-off the instance is capped at its size for ``GROWTH_HOLD_S`` (``GrowthCap``):
  vertical-first grows the others or adds an instance, which placement may put on a host with room.
  Why not the back-off: it holds every resize of the group, though other hosts may have room;
* it succeeds -> the resize is *in transit* (``Transit``) until the workload's health answer
  reports the new size (the fib backend's ``/healthz`` ``cpus``, the CPUs its worker pool runs on).
  A workload that does not report its CPUs is taken at the provider's word: arrived at once.
* the workload reports it -> ``serving``, with the seconds since the decision (the
  decision-to-added-capacity figure; also ``vmscale_resize_to_serving_seconds``). Until then the
  balancer weighs the instance by its old size, and the controller polls fast (``transitional``).
* the workload never reports it within ``health.boot_timeout_s`` (a process resized beyond the
  host's CPUs reports the CPUs it can use) -> taken as arrived anyway, saying what it reports;
* apart from any of this, the provider's listing shows another size than recorded, with no resize
  under way -> that size (``observed``).

Each step is an ``InstanceResized`` through ``Fleet.resized``: the store, the event log and the
event stream record every resize with why.
"""

from __future__ import annotations

from collections.abc import Iterable

from vmscale.controller.backoff import Backoff
from vmscale.controller.fleet import Fleet, GrowthCap, Instance
from vmscale.controller.operations import OpResult
from vmscale.controller.reporting import ErrorReporter
from vmscale.errors import NoHeadroomError, PermanentProviderError
from vmscale.event_kinds import InstanceResized, ResizeStage
from vmscale.metrics import ControllerMetrics

GROWTH_HOLD_S = 60.0  # an instance whose host refused its growth is not grown again before this


def lift_growth_caps(instances: Iterable[Instance], now: float) -> None:
    """Caps whose hold is over: the instance may be grown again (its host may have room by now)."""
    for inst in instances:
        cap = inst.timers.growth_cap
        if cap is not None and now >= cap.until:
            inst.timers.growth_cap = None


def resize_finished(
    inst: Instance, r: OpResult, fleet: Fleet, report: ErrorReporter, backoff: Backoff, now: float
) -> Backoff:
    """The provider's resize call came back; returns the resize back-off's next value."""
    transit = inst.timers.resize
    if transit is None:  # cannot happen: every resize call is recorded first
        return backoff
    if r.error is not None:
        inst.timers.resize = None
        if isinstance(r.error, NoHeadroomError):
            inst.timers.growth_cap = GrowthCap(transit.vcpus_from, now + GROWTH_HOLD_S)
            report.provider_error("resize", r.error, inst.name)
        else:
            backoff = backoff.failed(now, permanent=isinstance(r.error, PermanentProviderError))
            report.provider_error("resize", r.error, inst.name, backoff)
        fleet.resized(
            inst,
            InstanceResized(
                inst.name,
                ResizeStage.FAILED,
                transit.vcpus_from,
                transit.vcpus_to,
                f"the provider did not resize it: {r.error}",
            ),
        )
        return backoff
    if inst.health.cpus is None:  # the workload does not say: the provider's word is all there is
        arrived(inst, fleet, None, now, "the provider resized it (the workload does not report its CPUs)")
    return backoff.succeeded()


def follow(
    inst: Instance, fleet: Fleet, metrics: ControllerMetrics | None, now: float, timeout_s: float
) -> None:
    """After a health answer: has the resize in transit reached the workload?"""
    transit = inst.timers.resize
    cpus = inst.health.cpus
    if transit is None or cpus is None:
        return
    growing = transit.vcpus_to > transit.vcpus_from
    if (cpus >= transit.vcpus_to) if growing else (cpus <= transit.vcpus_to):
        arrived(inst, fleet, metrics, now, f"the workload serves with {cpus} CPUs")
    elif now - transit.started > timeout_s:
        arrived(
            inst,
            fleet,
            metrics,
            now,
            f"the workload still reports {cpus} CPUs after {timeout_s:g} s (health.boot_timeout_s); "
            "counting the resize as done",
        )


def listed(inst: Instance, vcpus: int, fleet: Fleet) -> None:
    """The provider's listing says the instance has ``vcpus``. Level-triggered like the rest: a
    resize whose answer was lost, or one made from outside (``virsh setvcpus``), is what it has.
    (While a resize is in transit the listing already shows its new size.)"""
    if vcpus != inst.facts.vcpus and inst.timers.resize is None:
        change = InstanceResized(
            inst.name, ResizeStage.OBSERVED, inst.facts.vcpus, vcpus, "the provider reports this size"
        )
        fleet.resized(inst, change)


def arrived(inst: Instance, fleet: Fleet, metrics: ControllerMetrics | None, now: float, why: str) -> None:
    transit = inst.timers.resize
    if transit is None:
        return
    inst.timers.resize = None
    seconds = None if transit.wanted_at is None else round(now - transit.wanted_at, 4)
    if metrics is not None and seconds is not None:
        metrics.resize_to_serving.labels(metrics.group).observe(seconds)
    fleet.resized(
        inst,
        InstanceResized(
            inst.name, ResizeStage.SERVING, transit.vcpus_from, transit.vcpus_to, why, seconds=seconds
        ),
    )
