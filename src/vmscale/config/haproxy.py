"""Settings of the HAProxy load balancer. Owned by the HAProxy integration (issue 6).

HAProxy's checks judge health by the ``[health]`` section's rule (kind, expected status, path
unless ``check_path`` says otherwise), so HAProxy and vmscale's own probe agree. The
health-check figures decide how long a dead instance keeps receiving traffic: HAProxy
notices a silent server after about ``check_fall`` failed checks, one every ``check_inter_s``
(each allowed ``check_timeout_s``). ``detection_window_s`` states that bound once so tests and
the documentation derive it from the same numbers.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from vmscale.config.base import Section

_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+|\*)?:(\d{1,5})$")


def _check_host_port(value: str) -> str:
    match = _HOST_PORT.match(value)
    if not match or not (0 < int(match.group(2)) < 65536):
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8080), got {value!r}")
    return value


class HaproxyConfig(Section):
    bind: str = Field("127.0.0.1:8080", description="frontend address clients use")
    binary: str = Field("haproxy", description="haproxy executable")
    stats_bind: str = Field(
        "127.0.0.1:8404", description="HAProxy's own stats page (/stats) and Prometheus exporter (/metrics)"
    )
    check_path: str = Field(
        "", description="HTTP path of HAProxy's health check (GET); empty = the [health] path"
    )
    check_inter_s: float = Field(1.0, ge=0.1, le=60, description="time between health checks")
    check_timeout_s: float = Field(1.0, ge=0.1, le=60, description="longest wait for one health check")
    check_rise: int = Field(1, ge=1, le=10, description="consecutive passed checks to mark a server up")
    check_fall: int = Field(2, ge=1, le=10, description="consecutive failed checks to mark a server down")
    observe_error_limit: int = Field(
        3,
        ge=0,
        le=100,
        description="connection errors seen on live traffic that mark a server down (0 = off)",
    )
    retries: int = Field(3, ge=0, le=10, description="retries of a failed request, each on another server")
    timeout_connect_s: float = Field(1.0, gt=0, le=60)
    timeout_client_s: float = Field(30.0, gt=0, le=3600)
    timeout_server_s: float = Field(30.0, gt=0, le=3600)
    timeout_queue_s: float = Field(10.0, gt=0, le=3600)
    maxconn: int = Field(4096, ge=16, le=1_000_000, description="connections the frontend accepts")
    server_maxconn: int = Field(
        0, ge=0, description="concurrent requests per server before queueing (0 = no limit)"
    )
    runtime_timeout_s: float = Field(2.0, gt=0, le=60, description="longest wait for one runtime-API command")
    start_timeout_s: float = Field(10.0, gt=0, le=120, description="longest wait for HAProxy to answer")
    stop_timeout_s: float = Field(5.0, gt=0, le=120, description="graceful stop before SIGKILL")
    latency_window_s: float = Field(
        10.0, ge=1, le=600, description="the p95 latency covers the requests answered this long back"
    )
    latency_max_samples: int = Field(
        10_000, ge=100, le=1_000_000, description="newest requests kept per server (bounds memory)"
    )

    @field_validator("bind", "stats_bind")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_host_port(value)

    @field_validator("check_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value and (not value.startswith("/") or any(c.isspace() for c in value)):
            raise ValueError(
                f"check_path must be empty or start with '/' and contain no spaces, got {value!r}"
            )
        return value

    @property
    def detection_window_s(self) -> float:
        """Worst-case time from a server going silent to HAProxy marking it down by health checks:
        up to one interval until the next check, then ``check_fall`` checks that each may take the
        whole timeout (HAProxy spaces checks by ``check_inter_s`` after the previous one ends)."""
        return self.check_inter_s + self.check_fall * (self.check_inter_s + self.check_timeout_s)
