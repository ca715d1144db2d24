"""Schemas of the scaling policies and of the what-if simulator. Owned by the policy layer (issue 3).

Every duration is seconds and says so (``_s``); percentages are 0..100. The arithmetic that uses
these values lives in ``vmscale.policy``; here is only what a user may write in the config file::

    [[policies]]
    kind = "target"
    metric = "cpu"
    target = 60
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, model_validator

from vmscale.config.base import Section
from vmscale.model import Metric


class ThresholdPolicyConfig(Section):
    """The original student rule, generalised.

    A *sample* is the group mean of the metric over ready instances, taken once per controller tick
    (the newest sample of each ready instance). ``samples_up`` consecutive samples strictly above
    ``upper`` add ``step`` instances; ``samples_down`` consecutive samples strictly below ``lower``
    remove ``step``. ``upper=75, samples_up=3, step=1`` with the group's ``max=2`` and no ``lower`` is
    exactly the original: 1 -> 2 after three one-second samples above 75%, never back.
    """

    kind: Literal["threshold"] = "threshold"
    name: str = "threshold"
    metric: Metric = Metric.CPU
    upper: float = Field(75.0, gt=0)
    lower: float | None = Field(None, ge=0, description="no lower bound = never scales in")
    samples_up: int = Field(3, ge=1)
    samples_down: int = Field(3, ge=1)
    step: int = Field(1, ge=1, description="instances added or removed per trigger")
    cooldown_up_s: float = Field(0.0, ge=0, description="after a scale-up, wait before another scale-up")
    cooldown_down_s: float = Field(0.0, ge=0, description="after any scale event, wait before scaling in")

    @model_validator(mode="after")
    def _bounds(self) -> ThresholdPolicyConfig:
        if self.lower is not None and self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


class RateLimit(Section):
    """At most ``instances`` or ``percent`` (the larger) change per ``period_s`` (HPA scaling policies)."""

    instances: int = Field(ge=0)
    percent: float = Field(ge=0)
    period_s: float = Field(15.0, gt=0)


class TargetPolicyConfig(Section):
    """Target tracking with the Kubernetes HPA semantics (see ``vmscale.policy.target``).

    ``target`` is in the metric's unit: percent of the instance's vCPUs for ``cpu``, requests per
    second per instance for ``rps``, seconds for ``latency_p95`` (group-level).
    """

    kind: Literal["target"] = "target"
    name: str = "target"
    metric: Metric = Metric.CPU
    target: float = Field(60.0, gt=0)
    tolerance: float = Field(0.1, ge=0, lt=1, description="dead band around the target, as a fraction")
    up_stabilization_s: float = Field(0.0, ge=0, description="take the lowest recommendation of this window")
    down_stabilization_s: float = Field(
        300.0, ge=0, description="take the highest recommendation of this window"
    )
    up_limit: RateLimit = RateLimit(instances=4, percent=100.0, period_s=15.0)
    down_limit: RateLimit = RateLimit(instances=0, percent=100.0, period_s=15.0)
    cooldown_up_s: float = Field(0.0, ge=0, description="after a scale-up, wait before another scale-up")
    cooldown_down_s: float = Field(0.0, ge=0, description="after any scale event, wait before scaling in")

    @model_validator(mode="after")
    def _reachable(self) -> TargetPolicyConfig:
        # CPU cannot read above 100%: a saturated group must look *outside* the dead band, or it never grows.
        if self.metric is Metric.CPU and self.target * (1 + self.tolerance) >= 100:
            raise ValueError(
                f"cpu target {self.target:g}% with tolerance {self.tolerance:g} puts 100% inside the dead "
                "band, so a saturated group would never scale up; lower the target or the tolerance"
            )
        return self


class StepAdjustment(Section):
    """One step: applies when ``lower_bound <= distance < upper_bound`` (distance beyond the bound)."""

    lower_bound: float = Field(0.0, ge=0)
    upper_bound: float | None = Field(None, gt=0, description="none = no upper end")
    adjustment: int = Field(ge=1, description="instances added (or removed, on the down side)")

    @model_validator(mode="after")
    def _order(self) -> StepAdjustment:
        if self.upper_bound is not None and self.upper_bound <= self.lower_bound:
            raise ValueError(
                f"upper_bound ({self.upper_bound}) must be above lower_bound ({self.lower_bound})"
            )
        return self


def _check_steps(steps: list[StepAdjustment], side: str) -> None:
    ordered = sorted(steps, key=lambda s: s.lower_bound)
    for a, b in itertools.pairwise(ordered):
        if a.upper_bound is None or a.upper_bound > b.lower_bound:
            raise ValueError(f"{side}: steps overlap ({a.lower_bound}.. and {b.lower_bound}..)")


class StepPolicyConfig(Section):
    """Step scaling (AWS style): the further the metric is beyond a bound, the bigger the step.

    Up side: distance = metric - ``upper``; down side: distance = ``lower`` - metric. The step whose
    ``[lower_bound, upper_bound)`` holds the distance gives the adjustment.
    """

    kind: Literal["step"] = "step"
    name: str = "step"
    metric: Metric = Metric.CPU
    upper: float | None = Field(70.0, gt=0)
    lower: float | None = Field(None, ge=0)
    steps_up: list[StepAdjustment] = Field(
        default_factory=lambda: [
            StepAdjustment(lower_bound=0, upper_bound=20, adjustment=1),
            StepAdjustment(lower_bound=20, adjustment=2),
        ]
    )
    steps_down: list[StepAdjustment] = Field(default_factory=lambda: [StepAdjustment(adjustment=1)])
    samples_up: int = Field(1, ge=1)
    samples_down: int = Field(3, ge=1)
    cooldown_up_s: float = Field(0.0, ge=0)
    cooldown_down_s: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _steps(self) -> StepPolicyConfig:
        if self.upper is None and self.lower is None:
            raise ValueError("set upper, lower or both")
        if self.upper is not None and self.lower is not None and self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        if self.upper is not None and not self.steps_up:
            raise ValueError("steps_up must not be empty when upper is set")
        if self.lower is not None and not self.steps_down:
            raise ValueError("steps_down must not be empty when lower is set")
        _check_steps(self.steps_up, "steps_up")
        _check_steps(self.steps_down, "steps_down")
        return self


class ScheduleEntry(Section):
    """While ``cron`` matches the current minute (in ``timezone``), keep at least ``min`` instances."""

    cron: str = Field(description="minute hour day-of-month month day-of-week, e.g. '0-59 9-17 * * 1-5'")
    min: int = Field(ge=0)
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _valid(self) -> ScheduleEntry:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from vmscale.cron import parse_cron

        parse_cron(self.cron)  # raises ValueError naming the bad field
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {self.timezone!r} (use an IANA name like 'Europe/Paris')"
            ) from None
        return self


class SchedulePolicyConfig(Section):
    """Known busy hours: a floor under the count, never a reason to scale in."""

    kind: Literal["schedule"] = "schedule"
    name: str = "schedule"
    entries: list[ScheduleEntry] = Field(min_length=1)


PolicyConfig = Annotated[
    ThresholdPolicyConfig | TargetPolicyConfig | StepPolicyConfig | SchedulePolicyConfig,
    Field(discriminator="kind"),
]


class SimulateConfig(Section):
    """The what-if simulator's model of the group (``vmscale simulate``)."""

    boot_s: float = Field(10.0, ge=0, description="launch to ready")
    step_s: float | None = Field(None, gt=0, description="time step; default = group.interval_s")
    capacity_rps: float = Field(100.0, gt=0, description="requests per second one instance serves at 100%")
    base_latency_s: float = Field(0.05, gt=0, description="p95 latency of an idle instance")


class ScalingConfig(Section):
    """How a decision changes capacity (``vmscale.policy.vertical``).

    ``horizontal`` (default): the policies count instances, and instances are added or removed.
    ``vertical-first``: the policies count vCPUs; ready instances grow (live vCPU hot-add, a larger
    cgroup quota) up to ``template.max_vcpus`` before instances are added, and shrink back to
    ``template.vcpus`` before instances are removed.
    """

    mode: Literal["horizontal", "vertical-first"] = Field(
        "horizontal", description="horizontal = add/remove instances; vertical-first = resize them first"
    )
