"""Schemas of the scaling policies. Owned by the policy layer (issue 3)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vmscale.config.base import Section
from vmscale.model import Metric


class ThresholdPolicyConfig(Section):
    kind: Literal["threshold"] = "threshold"
    name: str = "threshold"
    metric: Metric = Metric.CPU
    upper: float = Field(75.0, gt=0)
    lower: float | None = Field(None, ge=0)
    samples_up: int = Field(3, ge=1)
    samples_down: int = Field(3, ge=1)
    step: int = Field(1, ge=1)


class TargetPolicyConfig(Section):
    kind: Literal["target"] = "target"
    name: str = "target"
    metric: Metric = Metric.CPU
    target: float = Field(60.0, gt=0)
    tolerance: float = Field(0.1, ge=0, lt=1)


PolicyConfig = Annotated[ThresholdPolicyConfig | TargetPolicyConfig, Field(discriminator="kind")]
