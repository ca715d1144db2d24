"""Settings for running a group over many libvirt hosts: the ``[cluster]`` section.

    [cluster]                 how hosts are watched (grace period, reconnect back-off)
    [cluster.placement]       spread or bin-pack
    [[cluster.hosts]]         one table per libvirt host

Why one section and not a top-level ``[[hosts]]``: everything about many hosts stays in one place
(one line in the schema), and the example config can show a commented host table under it while
the section itself is present.

No ``[[cluster.hosts]]`` means one implicit host, ``local``, at ``provider.libvirt.uri``: a config
written for one machine keeps working unchanged. Capacity limits left out of a host take the provider's
(``provider.libvirt.min_free_memory_mb`` / ``max_vcpu_overcommit``). Only the libvirt provider uses
hosts; the process provider runs everything on this machine.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from vmscale.config.base import Section

HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
LABEL_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
IMPLICIT_HOST = "local"


class HostConfig(Section):
    name: str = Field(description="short name used in logs, placement and `vmscale hosts`")
    uri: str = Field(description="libvirt URI vmscale connects to, e.g. qemu+tls://h1.example/system")
    migration_uri: str = Field(
        "", description="URI the OTHER hosts' libvirtd use to reach this one (P2P migration); empty = uri"
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="free labels, e.g. { zone = 'a', rack = 'r12' }"
    )
    max_vcpu_overcommit: float | None = Field(
        None, gt=0, description="vCPUs may reach host CPUs x this; empty = provider.libvirt's"
    )
    min_free_memory_mb: int | None = Field(
        None, ge=0, description="memory a launch must leave free; empty = provider.libvirt's"
    )
    max_instances: int = Field(0, ge=0, description="most domains (of any group) on the host; 0 = no limit")
    cordoned: bool = Field(False, description="start cordoned: nothing new is placed here")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not HOST_NAME_RE.match(value):
            raise ValueError(
                f"host name {value!r} must be lowercase letters, digits and '-', starting with a letter"
            )
        return value

    @field_validator("uri", "migration_uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError(
                f"{value!r} is not a libvirt URI: expected e.g. qemu+tls://HOST/system or qemu:///system"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not LABEL_RE.match(k)]
        if bad:
            raise ValueError(f"label names must be lowercase [a-z0-9_.-] starting with a letter: {bad}")
        return value

    @property
    def peer_uri(self) -> str:
        """How another host's libvirtd reaches this one for a peer-to-peer migration."""
        return self.migration_uri or self.uri


def _unique_hosts(hosts: list[HostConfig]) -> list[HostConfig]:
    for what in ("name", "uri"):
        values = [getattr(h, what) for h in hosts]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"each host needs its own {what}; repeated: {', '.join(repeated)}")
    return hosts


HostList = Annotated[list[HostConfig], AfterValidator(_unique_hosts)]


class PlacementConfig(Section):
    strategy: Literal["spread", "binpack"] = Field(
        "spread",
        description="spread = across hosts and zones (losing a host costs least); "
        "binpack = onto the fewest hosts (the rest can be powered down)",
    )
    spread_label: str = Field("zone", description="host label whose values spread counts first (zones)")

    @field_validator("spread_label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not LABEL_RE.match(value):
            raise ValueError(f"spread_label {value!r} must be a label name ([a-z][a-z0-9_.-]*)")
        return value


class ClusterConfig(Section):
    unreachable_after_s: float = Field(
        30.0, gt=0, le=3600, description="a host silent this long is unreachable (its instances replaced)"
    )
    reconnect_initial_s: float = Field(1.0, gt=0, le=60, description="first wait before reconnecting")
    reconnect_max_s: float = Field(30.0, gt=0, le=600, description="longest wait between reconnect attempts")
    placement: PlacementConfig = PlacementConfig()
    hosts: HostList = Field(default_factory=list, description="[[cluster.hosts]]: none = one local host")

    def effective_hosts(self, default_uri: str) -> list[HostConfig]:
        """The configured hosts, or the one implicit host at ``provider.libvirt.uri``."""
        return list(self.hosts) or [HostConfig(name=IMPLICIT_HOST, uri=default_uri)]
