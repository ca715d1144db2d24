"""The ``[health]`` section: how vmscale (and HAProxy, when it balances) decides an instance serves.

The rule follows what operators already expect from Kubernetes probes and HAProxy's HTTP checks:
any 2xx or 3xx answer is healthy, redirects are not followed (a 3xx is itself an answer), and a
service without an HTTP health endpoint can be checked by a plain TCP connect. The status rule is
one value, :class:`StatusRule`, read by vmscale's own probe and rendered into HAProxy's
``http-check expect``, so the two can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from vmscale.config.base import Section

StatusSpec = int | str | list[int | str]
_CODE_OR_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")
_SPEC_HELP = 'use a code (200), a range ("200-399") or a list of them ([200, "301-302"])'


@dataclass(frozen=True, slots=True)
class StatusRule:
    """Which HTTP status codes mean healthy: inclusive ranges, e.g. ``((200, 399),)``."""

    ranges: tuple[tuple[int, int], ...]

    def accepts(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.ranges)

    def haproxy(self) -> str:
        """The argument of HAProxy's ``http-check expect status``: codes and ranges, comma-separated."""
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)

    def __str__(self) -> str:
        return self.haproxy().replace(",", ", ")


def parse_status_spec(spec: StatusSpec) -> StatusRule:
    """``200`` / ``"200-399"`` / ``[200, "301-302"]`` -> a StatusRule, or ValueError saying what is wrong."""
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise ValueError(f"an empty list accepts no answer: {_SPEC_HELP}")
    ranges = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"{item!r} is not a status code: {_SPEC_HELP}")
        match = _CODE_OR_RANGE.match(str(item))
        if match is None:
            raise ValueError(f"{item!r} is not a status code or range: {_SPEC_HELP}")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if not (100 <= lo <= hi <= 599):
            raise ValueError(f"{item!r} must lie within 100-599, the low end first: {_SPEC_HELP}")
        ranges.append((lo, hi))
    return StatusRule(tuple(sorted(set(ranges))))


class HealthConfig(Section):
    kind: Literal["http", "tcp"] = Field(
        "http", description="'http': GET path, judge the status; 'tcp': a connect is enough"
    )
    path: str = "/healthz"
    expected_status: StatusSpec = Field(
        "200-399", description='healthy answers (http only): 200, "200-299", [200, "301-302"]'
    )
    timeout_s: float = Field(1.0, gt=0, le=30)
    unhealthy_threshold: int = Field(3, ge=1, description="consecutive failed probes before replacement")
    boot_timeout_s: float = Field(60.0, gt=0, description="a booting instance not ready by then is failed")

    @field_validator("expected_status")
    @classmethod
    def _status(cls, value: StatusSpec) -> StatusSpec:
        parse_status_spec(value)
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"path must start with '/' and contain no spaces, got {value!r}")
        return value

    @property
    def status_rule(self) -> StatusRule:
        return parse_status_spec(self.expected_status)
