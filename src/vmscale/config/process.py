"""Settings of the ``process`` provider (each instance a local ``vmscale backend`` process)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vmscale.config.base import Section


class ProcessProviderConfig(Section):
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
