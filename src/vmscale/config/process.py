"""Settings of the ``process`` provider: each instance is a local process on its own loopback port.

What runs is ``command`` (any program, see ``vmscale.config.command`` for the placeholders); left
empty it is vmscale's own fib backend (``python -m vmscale backend``), configured by
``[workload.fib]``. The command, its environment and working folder are checked when the config
is loaded, so a misspelt program or placeholder is a ``config check`` error, not a failed launch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from vmscale.config.base import Section
from vmscale.config.command import command_problems, cwd_problem, env_problems


class ProcessProviderConfig(Section):
    # env and cwd come before command: the command's check reads them (info.data).
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment of each instance (values may use the same placeholders)",
    )
    cwd: str = Field("", description="working folder of each instance; empty = vmscale's own")
    command: list[str] = Field(
        default_factory=list,
        description="argv of each instance, with {port} {name} {index} {vcpus} {host} filled in; "
        "empty = vmscale's fib backend",
    )
    start_check_s: float = Field(
        0.5,
        ge=0,
        le=30,
        description="how long a launch watches a new instance for an immediate exit (reported with "
        "the tail of its log) before leaving the rest to health checks",
    )
    host: str = Field("127.0.0.1", description="loopback address the backends bind to")
    base_port: int = Field(18100, ge=1024, le=65000, description="instance N listens on base_port + N")
    cpu_limit: Literal["auto", "cgroup", "workers"] = Field(
        "auto",
        description="how each instance is held to its vCPUs: a cgroup CPU quota (v1 or v2), or only "
        "by its worker count; auto picks cgroup when the host allows it and says which",
    )
    python: str = Field("", description="interpreter for backends; empty = the one running vmscale")
    cgroup_period_us: int = Field(
        100_000,
        ge=1_000,
        le=1_000_000,
        description="CFS period of the cgroup CPU quota; instances get vcpus * period of CPU per period",
    )
    stop_timeout_s: float = Field(
        5.0, gt=0, le=60, description="after SIGKILL, longest wait for an instance's process tree to vanish"
    )

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        problems = env_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str) -> str:
        problem = cwd_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str], info: ValidationInfo) -> list[str]:
        problems = command_problems(value, info.data.get("env"), info.data.get("cwd"))
        if problems:
            raise ValueError("; ".join(problems))
        return value
