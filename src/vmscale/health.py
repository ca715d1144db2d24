"""Health probes: does an instance's workload answer?

The controller probes booting instances (to learn they are ready), ready ones (to notice
failure) and draining ones (for their in-flight count when no balancer reports sessions).

Two kinds, chosen by ``[health] kind``:

* ``http`` — ``GET endpoint + path`` without following redirects. Healthy means the status is in
  ``expected_status`` (default any 2xx or 3xx, as Kubernetes probes and HAProxy's checks judge it:
  a ``/healthz`` answering 204 is ready). A JSON body with an integer ``inflight`` (the fib
  backend's) adds the requests in progress; any other body is fine.
* ``tcp`` — a TCP connect to the endpoint's host and port, for services with no HTTP health.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from vmscale.config.health import HealthConfig, StatusRule, parse_status_spec

DEFAULT_RULE = parse_status_spec("200-399")


@dataclass(frozen=True, slots=True)
class HealthResult:
    ok: bool
    inflight: int | None = None
    error: str | None = None


class HealthChecker(Protocol):
    def check(self, endpoint: str) -> HealthResult: ...

    def close(self) -> None: ...


class HttpHealthChecker:
    """Probes ``endpoint + path`` with a short timeout; a status outside ``rule`` or a transport
    error is unhealthy."""

    def __init__(
        self,
        path: str = "/healthz",
        timeout_s: float = 1.0,
        rule: StatusRule = DEFAULT_RULE,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.path = path
        self.rule = rule
        # One pooled client for all probes; trust_env=False so that a proxy setting in the
        # environment never redirects loopback probes. A redirect is an answer, never followed.
        # ``transport`` lets unit tests answer without a server.
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s), trust_env=False, follow_redirects=False, transport=transport
        )

    def check(self, endpoint: str) -> HealthResult:
        try:
            r = self._client.get(endpoint.rstrip("/") + self.path)
        except httpx.HTTPError as exc:
            return HealthResult(False, error=f"{type(exc).__name__}: {exc}".strip())
        if not self.rule.accepts(r.status_code):
            return HealthResult(False, error=f"HTTP {r.status_code} (healthy: {self.rule})")
        return HealthResult(True, inflight=_inflight(r))

    def close(self) -> None:
        self._client.close()


def _inflight(r: httpx.Response) -> int | None:
    """The optional in-flight count from a JSON body such as the fib backend's ``{"inflight": 3}``."""
    if not r.content:
        return None
    try:
        body = r.json()
    except ValueError:
        return None
    value = body.get("inflight") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class TcpHealthChecker:
    """Healthy when a TCP connection to the endpoint's host and port opens within the timeout."""

    def __init__(self, timeout_s: float = 1.0) -> None:
        self.timeout_s = timeout_s

    def check(self, endpoint: str) -> HealthResult:
        try:
            url = urlsplit(endpoint if "://" in endpoint else f"tcp://{endpoint}")
            host, port = url.hostname, url.port
        except ValueError as exc:
            return HealthResult(False, error=f"bad endpoint {endpoint!r}: {exc}")
        if not host or port is None:
            return HealthResult(False, error=f"endpoint {endpoint!r} has no host and port to connect to")
        try:
            with socket.create_connection((host, port), timeout=self.timeout_s):
                return HealthResult(True)
        except OSError as exc:
            return HealthResult(False, error=f"TCP connect to {host}:{port} failed: {exc}")

    def close(self) -> None:
        pass


def build_health_checker(cfg: HealthConfig) -> HealthChecker:
    """The checker ``[health]`` asks for."""
    if cfg.kind == "tcp":
        return TcpHealthChecker(cfg.timeout_s)
    return HttpHealthChecker(cfg.path, cfg.timeout_s, cfg.status_rule)


class FakeHealthChecker:
    """For tests: endpoints are healthy unless listed in ``down``; ``inflight`` is settable."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.inflight: dict[str, int] = {}
        self.probes: list[str] = []

    def check(self, endpoint: str) -> HealthResult:
        self.probes.append(endpoint)
        if endpoint in self.down:
            return HealthResult(False, error="connection refused (fake)")
        return HealthResult(True, inflight=self.inflight.get(endpoint, 0))

    def close(self) -> None:
        pass
