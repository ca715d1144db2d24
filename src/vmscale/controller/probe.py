"""Health probes of many instances at once, bounded in time, run on the controller's worker pool."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout

from vmscale.controller.fleet import Instance
from vmscale.health import HealthChecker, HealthResult


class Prober:
    def __init__(self, checker: HealthChecker, executor: Executor, timeout_s: float) -> None:
        self._checker = checker
        self._executor = executor
        self._timeout_s = timeout_s

    def check_all(self, targets: Sequence[Instance]) -> dict[str, HealthResult]:
        """Each target's result; a probe that overruns the bound (3× the probe timeout) is a failure."""
        if len(targets) == 1:
            return {targets[0].name: self._check(targets[0].facts.endpoint)}
        futures = {t.name: self._executor.submit(self._check, t.facts.endpoint) for t in targets}
        out: dict[str, HealthResult] = {}
        for name, fut in futures.items():
            try:
                out[name] = fut.result(timeout=self._timeout_s * 3)
            except FutureTimeout:
                out[name] = HealthResult(False, error=f"probe did not finish within {self._timeout_s * 3:g}s")
        return out

    def _check(self, endpoint: str) -> HealthResult:
        try:
            return self._checker.check(endpoint)
        except Exception as exc:  # a checker bug must not kill the tick
            return HealthResult(False, error=str(exc))

    def close(self) -> None:
        self._checker.close()
