"""Settings of the HAProxy load balancer. Owned by the HAProxy integration (issue 6)."""

from __future__ import annotations

from pydantic import Field

from vmscale.config.base import Section


class HaproxyConfig(Section):
    bind: str = Field("127.0.0.1:8080", description="frontend address clients use")
    binary: str = Field("haproxy", description="haproxy executable")
