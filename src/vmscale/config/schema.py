"""The config file's schema: groups (one at the top level, or several in ``[[groups]]``), each with its
provider, template, policies, health and balancer; and the process-wide API, state and logs.

Durations are seconds and carry ``_s`` in their names; sizes carry their unit (``memory_mb``).
Rules within one section are field validators here; rules across sections (a warm-pool kind the
provider cannot do, a policy metric without a balancer...) live in ``vmscale.config.checks``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vmscale.config.address import split_host_port
from vmscale.config.base import Section
from vmscale.config.event_log import EventLogConfig
from vmscale.config.haproxy import HaproxyConfig
from vmscale.config.health import HealthConfig
from vmscale.config.hooks import HooksConfig
from vmscale.config.hosts import ClusterConfig
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.config.metrics import MetricsConfig
from vmscale.config.notify import NotifyConfig
from vmscale.config.policy import PolicyConfig, ScalingConfig, SimulateConfig
from vmscale.config.process import ProcessProviderConfig
from vmscale.config.state import StateConfig
from vmscale.config.workload import WorkloadConfig, upgrade_legacy

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class GroupConfig(Section):
    # Each rule is a field validator, so it is reported at its own path (``group.name``) and runs
    # even when a sibling field is wrong; a rule between fields reads the earlier ones from
    # ``info.data``, where a field that failed is absent (and the rule is then skipped).
    name: str = Field("web", description="group name; instances are named GROUP-N")
    min: int = Field(1, ge=0)
    max: int = Field(4, ge=1, le=1000, validate_default=True)
    initial: int | None = Field(None, ge=0, description="count at start; default = min")
    interval_s: float = Field(1.0, gt=0, le=60, description="reconcile/sampling interval")
    history_s: float = Field(600.0, gt=0, description="how much sample history policies can see")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"{value!r}: use lowercase letters, digits and '-', starting with a letter (at most 31)"
            )
        return value

    @field_validator("max")
    @classmethod
    def _max(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min")
        if low is not None and low > value:
            raise ValueError(f"max ({value}) must be >= min ({low})")
        return value

    @field_validator("initial")
    @classmethod
    def _initial(cls, value: int | None, info: ValidationInfo) -> int | None:
        low, high = info.data.get("min"), info.data.get("max")
        if value is not None and low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"initial ({value}) must be within [min, max] = [{low}, {high}]")
        return value

    @property
    def initial_count(self) -> int:
        return self.min if self.initial is None else self.initial


class TemplateConfig(Section):
    vcpus: int = Field(1, ge=1, le=64)
    max_vcpus: int | None = Field(
        None, ge=1, le=64, description="vCPUs an instance may grow to in place; default = vcpus (no growth)"
    )
    memory_mb: int = Field(512, ge=64)
    max_memory_mb: int | None = Field(
        None,
        ge=64,
        description="memory (libvirt, by balloon) an instance may grow to in place, reached at max_vcpus "
        "and in proportion below it (vertical-first); default = memory_mb (no growth)",
    )

    @field_validator("max_vcpus", "max_memory_mb")
    @classmethod
    def _room(cls, ceiling: int | None, info: ValidationInfo) -> int | None:
        base_name = {"max_vcpus": "vcpus", "max_memory_mb": "memory_mb"}[str(info.field_name)]
        base = info.data.get(base_name)
        if ceiling is not None and base is not None and ceiling < base:
            raise ValueError(f"{info.field_name} ({ceiling}) must be at least {base_name} ({base})")
        return ceiling

    @property
    def vcpu_ceiling(self) -> int:
        """The most vCPUs one instance may have (``max_vcpus``, or ``vcpus`` when not set)."""
        return self.max_vcpus if self.max_vcpus is not None else self.vcpus

    @property
    def memory_ceiling(self) -> int:
        """The most memory (MiB) one instance may have (``max_memory_mb``, or ``memory_mb``)."""
        return self.max_memory_mb if self.max_memory_mb is not None else self.memory_mb

    @property
    def has_memory_room(self) -> bool:
        """Memory is asked to grow in place (``max_memory_mb`` above ``memory_mb``)."""
        return self.memory_ceiling > self.memory_mb


class ProviderConfig(Section):
    kind: Literal["process", "libvirt", "fake"] = "process"
    process: ProcessProviderConfig = ProcessProviderConfig()
    libvirt: LibvirtProviderConfig = LibvirtProviderConfig()


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
    bind: str = Field("127.0.0.1:8900", description="control API address (host:port; port 0 = any free)")
    token_file: str = Field("", description="file of tokens ('SCOPE TOKEN' per line); or VMSCALE_TOKENS")
    max_body_bytes: int = Field(16_384, ge=256)
    rate_limit_per_s: float = Field(50.0, gt=0, description="requests per second per client address")
    advertise: str = Field(
        "",
        description="the URL other controllers and the CLI reach this API at (leader elections); "
        "empty = http://HOST:PORT of bind, with this machine's name when bound to every address",
    )

    @field_validator("advertise")
    @classmethod
    def _advertise(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"expected an http:// or https:// URL (e.g. http://ctl1.example:8900), got {value!r}"
            )
        return value

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        split_host_port(value, port_zero_ok=True)
        return value


class GroupSettings(Section):
    """Everything that belongs to one group: its bounds, provider, template, policies, health,
    drain, launch, warm pool, balancer front, external metrics, hooks and notifications.

    A file without ``[[groups]]`` has these sections at its top level, and then the whole file is
    that one group's settings (``VmscaleConfig`` *is a* ``GroupSettings``); each ``[[groups]]``
    entry has the same sections under the same names. The controller takes a ``GroupSettings``.
    """

    group: GroupConfig = GroupConfig()
    provider: ProviderConfig = ProviderConfig()
    template: TemplateConfig = TemplateConfig()
    policies: list[PolicyConfig] = Field(default_factory=list)
    scaling: ScalingConfig = ScalingConfig()
    health: HealthConfig = HealthConfig()
    drain: DrainConfig = DrainConfig()
    launch: LaunchConfig = LaunchConfig()
    warm_pool: WarmPoolConfig = WarmPoolConfig()
    lb: LbConfig = LbConfig()
    metrics: MetricsConfig = MetricsConfig()  # external metrics policies can name (Prometheus queries)
    hooks: HooksConfig = HooksConfig()  # lifecycle hooks on launch and terminate
    notify: NotifyConfig = NotifyConfig()  # decision webhooks, file_sd, the original client's sockets
    workload: WorkloadConfig = WorkloadConfig()  # what only a particular workload understands
    _notes: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _legacy_keys(cls, data: Any, handler: ModelWrapValidatorHandler[GroupSettings]) -> GroupSettings:
        """Old key names are moved to their new place first (config/workload.py), with a note; for
        a one-group file at its top level, for several in each ``[[groups]]`` entry."""
        data, notes = upgrade_legacy(data)
        cfg = handler(data)
        cfg._notes = notes
        return cfg

    @property
    def notes(self) -> tuple[str, ...]:
        """Deprecation notes from loading (keys read under their new name); `config check` shows them."""
        return self._notes


# The sections of one group, by name: at the top level of a one-group file, or in each [[groups]].
GROUP_SECTIONS: tuple[str, ...] = tuple(GroupSettings.model_fields)


class VmscaleConfig(GroupSettings):
    """The whole file: the process-wide sections, and either one group at the top level (the
    inherited sections) or several in ``groups``. Code that runs groups reads
    ``group_settings()``, never the inherited sections directly (with ``[[groups]]`` those are
    unset defaults)."""

    api: ApiConfig = ApiConfig()
    state: StateConfig = StateConfig()
    event_log: EventLogConfig = EventLogConfig()
    simulate: SimulateConfig = SimulateConfig()
    cluster: ClusterConfig = ClusterConfig()  # libvirt hosts, placement, host failure: one per process
    groups: list[GroupSettings] = Field(
        default_factory=list,
        min_length=1,  # checked only when written: `groups = []` would run nothing
        description="several groups in one controller; absent = the top level is the one group",
    )

    def group_settings(self) -> list[GroupSettings]:
        """Every group this config runs, in file order: ``[[groups]]``, or the file itself."""
        return list(self.groups) if self.groups else [self]

    @property
    def uses_groups(self) -> bool:
        """The file uses ``[[groups]]`` (even with one entry): per-group state folders apply."""
        return bool(self.groups)

    def settings_of(self, name: str) -> GroupSettings:
        """The group called ``name``; ``KeyError`` naming the groups there are."""
        for gs in self.group_settings():
            if gs.group.name == name:
                return gs
        names = ", ".join(g.group.name for g in self.group_settings())
        raise KeyError(f"no group {name!r} in this config (its groups: {names})")

    @property
    def notes(self) -> tuple[str, ...]:
        """Deprecation notes from loading, the groups' own at their paths (``groups[1].template...``)."""
        own = self._notes
        return own + tuple(f"groups[{i}].{note}" for i, gs in enumerate(self.groups) for note in gs.notes)
