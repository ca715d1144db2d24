"""The config file's schema: one group, its provider, template, policies, health, balancer and API.

Durations are seconds and carry ``_s`` in their names; sizes carry their unit (``memory_mb``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, model_validator

from vmscale.config.base import Section
from vmscale.config.haproxy import HaproxyConfig
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.config.policy import PolicyConfig, SimulateConfig
from vmscale.config.process import ProcessProviderConfig
from vmscale.config.workload import FibWorkloadConfig, WorkloadConfig, upgrade_legacy

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class GroupConfig(Section):
    name: str = Field("web", description="group name; instances are named GROUP-N")
    min: int = Field(1, ge=0)
    max: int = Field(4, ge=1, le=1000)
    initial: int | None = Field(None, ge=0, description="count at start; default = min")
    interval_s: float = Field(1.0, gt=0, le=60, description="reconcile/sampling interval")
    history_s: float = Field(600.0, gt=0, description="how much sample history policies can see")

    @model_validator(mode="after")
    def _bounds(self) -> GroupConfig:
        if not NAME_RE.match(self.name):
            raise ValueError("name must be lowercase letters, digits and '-', starting with a letter")
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        if self.initial is not None and not (self.min <= self.initial <= self.max):
            raise ValueError(f"initial ({self.initial}) must be within [min, max] = [{self.min}, {self.max}]")
        return self

    @property
    def initial_count(self) -> int:
        return self.min if self.initial is None else self.initial


class TemplateConfig(Section):
    vcpus: int = Field(1, ge=1, le=64)
    memory_mb: int = Field(512, ge=64)
    fib_max_n: int = Field(
        FibWorkloadConfig().max_n,  # no bounds of its own: workload.fib.max_n reports a bad value
        description="deprecated: the old name of [workload.fib] max_n, which the loader copies here",
    )


class ProviderConfig(Section):
    kind: Literal["process", "libvirt", "fake"] = "process"
    process: ProcessProviderConfig = ProcessProviderConfig()
    libvirt: LibvirtProviderConfig = LibvirtProviderConfig()


class HealthConfig(Section):
    path: str = "/healthz"
    timeout_s: float = Field(1.0, gt=0, le=30)
    unhealthy_threshold: int = Field(3, ge=1, description="consecutive failed probes before replacement")
    boot_timeout_s: float = Field(60.0, gt=0, description="a booting instance not ready by then is failed")


class DrainConfig(Section):
    timeout_s: float = Field(30.0, ge=0, description="longest wait for in-flight requests at scale-in")
    grace_s: float = Field(0.5, ge=0, description="pause after leaving rotation before counting in-flight")


class LaunchConfig(Section):
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    terminate_timeout_s: float = Field(10.0, gt=0, description="graceful stop before forcing")


class WarmPoolConfig(Section):
    size: int = Field(0, ge=0, le=100)
    kind: Literal["paused", "saved"] = "paused"


class LbConfig(Section):
    kind: Literal["none", "haproxy"] = "none"
    haproxy: HaproxyConfig = HaproxyConfig()


class ApiConfig(Section):
    bind: str = Field("127.0.0.1:8900", description="control API address (host:port)")
    token_file: str = Field("", description="file of tokens ('SCOPE TOKEN' per line); or VMSCALE_TOKENS")
    max_body_bytes: int = Field(16_384, ge=256)
    rate_limit_per_s: float = Field(50.0, gt=0, description="requests per second per client address")


class StateConfig(Section):
    dir: str = Field(".vmscale", description="state folder: database, logs, overlays")
    db: str = Field("", description="SQLite path; empty = <dir>/state.db")


class VmscaleConfig(Section):
    group: GroupConfig = GroupConfig()
    provider: ProviderConfig = ProviderConfig()
    template: TemplateConfig = TemplateConfig()
    policies: list[PolicyConfig] = Field(default_factory=list)
    health: HealthConfig = HealthConfig()
    drain: DrainConfig = DrainConfig()
    launch: LaunchConfig = LaunchConfig()
    warm_pool: WarmPoolConfig = WarmPoolConfig()
    lb: LbConfig = LbConfig()
    api: ApiConfig = ApiConfig()
    state: StateConfig = StateConfig()
    simulate: SimulateConfig = SimulateConfig()
    workload: WorkloadConfig = WorkloadConfig()
    _notes: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _legacy_keys(cls, data: Any, handler: ModelWrapValidatorHandler[VmscaleConfig]) -> VmscaleConfig:
        """Old key names are moved to their new place first (config/workload.py), with a note."""
        data, notes = upgrade_legacy(data)
        cfg = handler(data)
        cfg._notes = notes
        return cfg

    @property
    def notes(self) -> tuple[str, ...]:
        """Deprecation notes from loading (keys read under their new name); `config check` shows them."""
        return self._notes

    @model_validator(mode="after")
    def _cross(self) -> VmscaleConfig:
        names = [p.name for p in self.policies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"policies: names must be unique, repeated: {', '.join(dupes)}")
        if self.warm_pool.size and self.warm_pool.kind == "saved" and self.provider.kind == "process":
            raise ValueError("warm_pool.kind = 'saved' needs the libvirt provider (processes can only pause)")
        return self
