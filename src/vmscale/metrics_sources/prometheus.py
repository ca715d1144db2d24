"""A PromQL instant query as a metric source (the role of nomad-autoscaler's Prometheus APM plugin
and KEDA's Prometheus scaler).

Every ``read`` is one ``GET {url}/api/v1/query?query=...&timeout=...`` with an explicit client
timeout. The answer becomes a ``Reading``:

* **per group** (no ``instance_label``): a scalar, or a vector of exactly one series. Several
  series are an error that says to aggregate them (``sum``/``avg``/``max``).
* **per instance** (``instance_label = "vmscale_instance"``): each series whose label value names
  one of the group's instances is that instance's value; other series (other groups, no label) are
  left out; two series for one instance are an error that says to aggregate ``by (label)``.
* **no data** (the policies hold and the decision says why): the server cannot be reached or does
  not answer in time, rejects the query (a PromQL syntax error, with the server's words), answers
  with something that is not the Prometheus API, returns a range vector or a string, or returns no
  series (unless ``on_empty = "zero"``). NaN and infinite values are no data too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from vmscale.clock import Clock, SystemClock
from vmscale.config.metrics import PrometheusMetricConfig
from vmscale.metrics_sources.base import Reading


class QueryFailed(Exception):
    """Internal: the query gave no usable answer; the message is the reading's note."""


class PrometheusSource:
    """One ``[[metrics]]`` entry of kind ``prometheus``. Thread-safe: one pooled client, no state."""

    def __init__(
        self,
        cfg: PrometheusMetricConfig,
        *,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.cfg = cfg
        self.metric = cfg.name
        self.per_instance = bool(cfg.instance_label)
        self.timeout_s = cfg.timeout_s
        self.stale_after_s = cfg.stale_after_s
        self._clock = clock or SystemClock()
        self._endpoint = cfg.url.rstrip("/") + "/api/v1/query"
        # trust_env=False: a proxy setting in the environment must never redirect the query.
        self._client = httpx.Client(
            timeout=httpx.Timeout(cfg.timeout_s), transport=transport, trust_env=False
        )

    def read(self, instances: Sequence[str]) -> Reading:
        start = self._clock.monotonic()
        try:
            result_type, result = self._query()
            if self.per_instance:
                values, note = self._per_instance(result_type, result, instances)
                reading = Reading(self.metric, self._clock.now(), True, instances=values, note=note)
            else:
                value, note = self._per_group(result_type, result)
                reading = Reading(self.metric, self._clock.now(), False, group=value, note=note)
        except QueryFailed as exc:
            reading = Reading(self.metric, self._clock.now(), self.per_instance, note=str(exc), failed=True)
        return replace(reading, duration_s=self._clock.monotonic() - start)

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ the HTTP exchange

    def _query(self) -> tuple[str, Any]:
        url = self.cfg.url
        params = {"query": self.cfg.query, "timeout": f"{self.cfg.timeout_s:g}s"}
        try:
            resp = self._client.get(self._endpoint, params=params, headers=self._headers())
        except httpx.TimeoutException:
            raise QueryFailed(
                f"Prometheus at {url} did not answer within timeout_s={self.cfg.timeout_s:g}"
            ) from None
        except httpx.HTTPError as exc:
            raise QueryFailed(f"cannot reach Prometheus at {url}: {type(exc).__name__}: {exc}") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            snippet = resp.text[:120].replace("\n", " ")
            raise QueryFailed(
                f"{url} answered HTTP {resp.status_code} but not as the Prometheus API ({snippet!r}); "
                "is url the Prometheus server's base address?"
            )
        if body["status"] == "error":
            kind = body.get("errorType", "error")
            raise QueryFailed(f"Prometheus rejected the query ({kind}): {body.get('error', '(no message)')}")
        data = body.get("data")
        if not isinstance(data, dict) or "resultType" not in data:
            raise QueryFailed(f"Prometheus at {url} answered without data.resultType")
        return str(data["resultType"]), data.get("result")

    def _headers(self) -> dict[str, str]:
        path = self.cfg.bearer_token_file
        if not path:
            return {}
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise QueryFailed(f"cannot read bearer_token_file {path!r}: {exc.strerror or exc}") from None
        return {"Authorization": f"Bearer {token}"}

    # ------------------------------------------------------------------ the answer -> values

    def _per_group(self, result_type: str, result: Any) -> tuple[float | None, str]:
        if result_type == "scalar":
            return _value(result, "the scalar")
        series = self._vector(result_type, result)
        if not series:
            return self._empty()
        if len(series) > 1:
            raise QueryFailed(
                f"query returned {len(series)} series where one value for the group is needed; "
                "aggregate it (sum(...), avg(...), max(...)) or set instance_label for per-instance values"
            )
        return _value(series[0].get("value"), _labels(series[0]))

    def _per_instance(
        self, result_type: str, result: Any, instances: Sequence[str]
    ) -> tuple[dict[str, float], str]:
        label = self.cfg.instance_label
        if result_type == "scalar":
            raise QueryFailed(
                f"query gives one value (a scalar) but instance_label = {label!r} asks for one per "
                "instance; keep the label in the result (e.g. avg by ({label}) (...)) or unset instance_label"
            )
        series = self._vector(result_type, result)
        wanted = set(instances)
        values: dict[str, float] = {}
        notes: list[str] = []
        others: set[str] = set()
        for s in series:
            name = s.get("metric", {}).get(label)
            if name not in wanted:
                others.add(str(name) if name is not None else f"(no {label})")
                continue
            if name in values:
                raise QueryFailed(
                    f"query returned several series for instance {name!r}; aggregate them by "
                    f"({label}), e.g. sum by ({label}) (...)"
                )
            value, note = _value(s.get("value"), f"instance {name}")
            if value is None:
                notes.append(note)
            else:
                values[name] = value
        if not series:
            if self.cfg.on_empty == "zero":
                return dict.fromkeys(instances, 0.0), ""
            return {}, _empty_note()
        if self.cfg.on_empty == "zero":
            for name in wanted - values.keys():
                values.setdefault(name, 0.0)
        if not values and others:
            seen = ", ".join(sorted(others)[:5])
            notes.append(f"no series has {label} naming an instance of this group (saw: {seen})")
        elif missing := sorted(wanted - values.keys()):
            notes.append(f"no series for {', '.join(missing)}")
        return values, "; ".join(notes)

    def _vector(self, result_type: str, result: Any) -> list[dict[str, Any]]:
        if result_type == "matrix":
            raise QueryFailed(
                "query returns a range vector (it ends in [duration]); an instant value is needed: "
                "wrap it in rate(...), avg_over_time(...) or similar, or drop the [duration]"
            )
        if result_type != "vector" or not isinstance(result, list):
            raise QueryFailed(f"query returns a {result_type}; it must give a number (a vector or a scalar)")
        return [s for s in result if isinstance(s, dict)]

    def _empty(self) -> tuple[float | None, str]:
        if self.cfg.on_empty == "zero":
            return 0.0, ""
        return None, _empty_note()


def _empty_note() -> str:
    return "query returned no series (on_empty = 'hold'; set 'zero' if no series means nothing to do)"


def _labels(series: dict[str, Any]) -> str:
    labels = series.get("metric") or {}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _value(pair: Any, what: str) -> tuple[float | None, str]:
    """A ``[timestamp, "value"]`` pair -> the float, or None and why (NaN, infinite, malformed)."""
    try:
        value = float(pair[1])
    except (TypeError, ValueError, IndexError):
        raise QueryFailed(f"malformed value for {what}: {pair!r}") from None
    if math.isnan(value):
        return None, f"{what} is NaN (e.g. a division by zero in the query)"
    if math.isinf(value):
        return None, f"{what} is infinite"
    return value, ""
