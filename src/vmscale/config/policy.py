"""Schemas of the scaling policies and of the what-if simulator. Owned by the policy layer (issue 3).

Every duration is seconds and says so (``_s``), except a schedule entry's ``duration``, written
the way people say it ("8h30m"); percentages are 0..100. The arithmetic that uses
these values lives in ``vmscale.policy``; here is only what a user may write in the config file::

    [[policies]]
    kind = "target"
    metric = "cpu"
    target = 60
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vmscale.config.base import Section
from vmscale.config.metrics import MetricKey
from vmscale.cron import check_cron, parse_duration
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
    metric: MetricKey = Field(Metric.CPU, description="a built-in metric or a [[metrics]] name")
    upper: float = Field(75.0, gt=0)
    lower: float | None = Field(None, ge=0, description="no lower bound = never scales in")
    samples_up: int = Field(3, ge=1)
    samples_down: int = Field(3, ge=1)
    step: int = Field(1, ge=1, description="instances added or removed per trigger")
    cooldown_up_s: float = Field(0.0, ge=0, description="after a scale-up, wait before another scale-up")
    cooldown_down_s: float = Field(0.0, ge=0, description="after any scale event, wait before scaling in")

    @field_validator("lower")
    @classmethod
    def _bounds(cls, lower: float | None, info: ValidationInfo) -> float | None:
        upper = info.data.get("upper")
        if lower is not None and upper is not None and lower >= upper:
            raise ValueError(f"lower ({lower}) must be below upper ({upper})")
        return lower


class RateLimit(Section):
    """At most ``instances`` or ``percent`` (the larger) change per ``period_s`` (HPA scaling policies)."""

    instances: int = Field(ge=0)
    percent: float = Field(ge=0)
    period_s: float = Field(15.0, gt=0)


class TargetPolicyConfig(Section):
    """Target tracking with the Kubernetes HPA semantics (see ``vmscale.policy.target``).

    ``target`` is in the metric's unit: percent of the instance's vCPUs for ``cpu``, requests per
    second per instance for ``rps``, seconds for ``latency_p95`` (group-level); for an external
    metric, per instance when its query has an ``instance_label``, else for the group's one value.
    """

    kind: Literal["target"] = "target"
    name: str = "target"
    metric: MetricKey = Field(Metric.CPU, description="a built-in metric or a [[metrics]] name")
    target: float = Field(60.0, gt=0)
    tolerance: float = Field(
        0.1, ge=0, lt=1, validate_default=True, description="dead band around the target, as a fraction"
    )
    up_stabilization_s: float = Field(0.0, ge=0, description="take the lowest recommendation of this window")
    down_stabilization_s: float = Field(
        300.0, ge=0, description="take the highest recommendation of this window"
    )
    up_limit: RateLimit = RateLimit(instances=4, percent=100.0, period_s=15.0)
    down_limit: RateLimit = RateLimit(instances=0, percent=100.0, period_s=15.0)
    cooldown_up_s: float = Field(0.0, ge=0, description="after a scale-up, wait before another scale-up")
    cooldown_down_s: float = Field(0.0, ge=0, description="after any scale event, wait before scaling in")

    @field_validator("tolerance")
    @classmethod
    def _reachable(cls, tolerance: float, info: ValidationInfo) -> float:
        # CPU cannot read above 100%: a saturated group must look *outside* the dead band, or it never grows.
        metric, target = info.data.get("metric"), info.data.get("target")
        if metric == Metric.CPU and target is not None and target * (1 + tolerance) >= 100:
            raise ValueError(
                f"cpu target {target:g}% with tolerance {tolerance:g} puts 100% inside the dead "
                "band, so a saturated group would never scale up; lower the target or the tolerance"
            )
        return tolerance


class StepAdjustment(Section):
    """One step: applies when ``lower_bound <= distance < upper_bound`` (distance beyond the bound)."""

    lower_bound: float = Field(0.0, ge=0)
    upper_bound: float | None = Field(None, gt=0, description="none = no upper end")
    adjustment: int = Field(ge=1, description="instances added (or removed, on the down side)")

    @field_validator("upper_bound")
    @classmethod
    def _order(cls, upper_bound: float | None, info: ValidationInfo) -> float | None:
        lower_bound = info.data.get("lower_bound")
        if upper_bound is not None and lower_bound is not None and upper_bound <= lower_bound:
            raise ValueError(f"upper_bound ({upper_bound}) must be above lower_bound ({lower_bound})")
        return upper_bound


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
    metric: MetricKey = Field(Metric.CPU, description="a built-in metric or a [[metrics]] name")
    upper: float | None = Field(70.0, gt=0)
    lower: float | None = Field(None, ge=0, validate_default=True)
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

    @field_validator("lower")
    @classmethod
    def _bounds(cls, lower: float | None, info: ValidationInfo) -> float | None:
        if "upper" not in info.data:
            return lower  # upper itself is wrong: reported there
        upper = info.data["upper"]
        if upper is None and lower is None:
            raise ValueError("set upper, lower or both")
        if upper is not None and lower is not None and lower >= upper:
            raise ValueError(f"lower ({lower}) must be below upper ({upper})")
        return lower

    @field_validator("steps_up", "steps_down")
    @classmethod
    def _steps(cls, steps: list[StepAdjustment], info: ValidationInfo) -> list[StepAdjustment]:
        side = info.field_name or "steps"
        bound = "upper" if side == "steps_up" else "lower"
        if info.data.get(bound) is not None and not steps:
            raise ValueError(f"{side} must not be empty when {bound} is set")
        _check_steps(steps, side)
        return steps


class ScheduleEntry(Section):
    """From each ``start`` until the next ``end`` (or for ``duration``), in ``timezone``, keep at least
    ``min`` instances: "from 09:00 to 17:30 on weekdays keep at least 3" is
    ``start = "0 9 * * MON-FRI"``, ``end = "30 17 * * MON-FRI"``, ``min = 3``."""

    start: str = Field(
        description="cron expression that opens the window, e.g. '0 9 * * MON-FRI' or '@daily'"
    )
    end: str = Field("", description="cron expression that closes it (its first match after the start)")
    duration: str = Field(
        "", validate_default=True, description="or how long it stays open, e.g. '8h30m', '90m', '1d'"
    )
    min: int = Field(ge=0)
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cron" in data:
            raise ValueError(
                "`cron` became `start` plus `end` (or `duration`), so an entry holds for a window, not "
                "one minute: e.g. start = '0 9 * * MON-FRI', end = '30 17 * * MON-FRI'"
            )
        return data

    @field_validator("start", "end")
    @classmethod
    def _cron(cls, value: str, info: ValidationInfo) -> str:
        return check_cron(value) if value or info.field_name == "start" else value

    @field_validator("duration", mode="after")
    @classmethod
    def _end_or_duration(cls, duration: str, info: ValidationInfo) -> str:
        if duration:
            parse_duration(duration)
        if "end" in info.data and bool(info.data["end"]) == bool(duration):
            raise ValueError("give either `end` (a cron expression) or `duration` (e.g. '8h30m'), not both")
        return duration

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name like 'Europe/Paris')") from None
        return value

    @property
    def duration_s(self) -> float | None:
        return parse_duration(self.duration) if self.duration else None


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
