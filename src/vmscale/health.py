"""Health probes: does an instance's workload answer ``GET /healthz``?

The controller probes booting instances (to learn they are ready), ready ones (to notice
failure) and draining ones (for their in-flight count when no balancer reports sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx


@dataclass(frozen=True, slots=True)
class HealthResult:
    ok: bool
    inflight: int | None = None
    error: str | None = None


class HealthChecker(Protocol):
    def check(self, endpoint: str) -> HealthResult: ...

    def close(self) -> None: ...


class HttpHealthChecker:
    """Probes ``endpoint + path`` with a short timeout; any non-200 or transport error is unhealthy."""

    def __init__(self, path: str = "/healthz", timeout_s: float = 1.0) -> None:
        self.path = path
        # One pooled client for all probes; trust_env=False so that a proxy setting in the
        # environment never redirects loopback probes.
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False)

    def check(self, endpoint: str) -> HealthResult:
        try:
            r = self._client.get(endpoint.rstrip("/") + self.path)
        except httpx.HTTPError as exc:
            return HealthResult(False, error=f"{type(exc).__name__}: {exc}".strip())
        if r.status_code != 200:
            return HealthResult(False, error=f"HTTP {r.status_code}")
        inflight = None
        try:
            body = r.json()
            if isinstance(body, dict) and isinstance(body.get("inflight"), int):
                inflight = body["inflight"]
        except ValueError:
            pass
        return HealthResult(True, inflight=inflight)

    def close(self) -> None:
        self._client.close()


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
