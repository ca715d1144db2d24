"""External metrics: ``[[metrics.prometheus]]`` entries that policies can name in their ``metric``.

    [[metrics.prometheus]]
    name = "queue_depth"                   # what a policy's `metric` says
    url = "http://127.0.0.1:9090"
    query = 'sum(job_queue_length{service="web"})'
    timeout_s = 2.0

    [[policies]]
    kind = "target"
    metric = "queue_depth"
    target = 10

A query gives one value for the group, or with ``instance_label`` one value per instance (the
series' label value is the instance name, e.g. ``vmscale_instance`` from vmscale's file_sd output).
When the query fails, or (with ``on_empty = "hold"``) returns nothing, the metric has no data and
the policies hold: missing data never scales a group in. The arithmetic lives in
``vmscale.metrics_sources``; here is only what a user may write, checked once, all at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from vmscale.config.base import Section
from vmscale.config.promql import promql_problem
from vmscale.model import Metric, MetricName, is_builtin, metric_name

METRIC_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BUILTIN_NAMES = ", ".join(m.value for m in Metric)


def _metric_key(value: str) -> MetricName:
    """A built-in metric becomes its ``Metric`` member, any other name an ``ExternalMetric`` that
    must be spelled like one (whether an entry under ``[metrics]`` defines it is checked across the
    whole file)."""
    if is_builtin(value):
        return Metric(value)
    if not METRIC_NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is neither a built-in metric ({BUILTIN_NAMES}) nor a valid external metric name "
            "(lowercase letters, digits and '_', defined under [metrics])"
        )
    return metric_name(value)


MetricKey = Annotated[str, AfterValidator(_metric_key)]
"""The type of a policy's ``metric``: a built-in metric or the name of an entry under ``[metrics]``."""


def readable_file(path: str, setting: str) -> None:
    """Raise a one-line error when ``path`` (non-empty) is not a readable file."""
    if path and not Path(path).expanduser().is_file():
        raise ValueError(f"{setting} {path!r} is not a file; create it or leave {setting} empty")


def http_url(url: str, setting: str, example: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting} {url!r} must be an http:// or https:// URL, e.g. {example}")


class PrometheusMetricConfig(Section):
    """One PromQL instant query (``GET /api/v1/query``) against a Prometheus server."""

    name: str = Field(description="the name policies use in `metric` (not a built-in name)")
    url: str = Field("http://127.0.0.1:9090", description="the Prometheus server's base URL")
    query: str = Field(description="a PromQL expression; evaluated as an instant query every interval")
    instance_label: str = Field(
        "",
        description="label whose value is the instance name (per-instance values); "
        "empty = the query gives one value for the group",
    )
    timeout_s: float = Field(
        2.0, gt=0, le=60, description="longest wait for an answer (also sent to the server)"
    )
    bearer_token_file: str = Field("", description="file holding a bearer token for the server; empty = none")
    on_empty: Literal["hold", "zero"] = Field(
        "hold",
        description="an empty result: 'hold' = no data (policies hold), 'zero' = the value is 0 "
        "(for queries where no series means nothing to do, like an empty queue)",
    )
    stale_after_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="a value older than this (the server stopped answering) counts as no data",
    )

    @model_validator(mode="after")
    def _valid(self) -> PrometheusMetricConfig:
        problems = []
        if is_builtin(self.name):
            problems.append(f"name {self.name!r} is a built-in metric; pick another name for the query")
        elif not METRIC_NAME_RE.match(self.name):
            problems.append(
                f"name {self.name!r}: use lowercase letters, digits and '_', starting with a letter"
            )
        query_problem = promql_problem(self.query)
        for problem in (
            self._url_problem(),
            query_problem and f"query: {query_problem}",
            self._label_problem(),
        ):
            if problem:
                problems.append(problem)
        try:
            readable_file(self.bearer_token_file, "bearer_token_file")
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _url_problem(self) -> str | None:
        try:
            http_url(self.url, "url", "'http://127.0.0.1:9090'")
        except ValueError as exc:
            return str(exc)
        if urlsplit(self.url).path.rstrip("/").endswith("/api/v1/query") or "?" in self.url:
            return (
                f"url {self.url!r}: give the server's base URL (e.g. 'http://127.0.0.1:9090'); "
                "vmscale adds /api/v1/query and the query itself"
            )
        return None

    def _label_problem(self) -> str | None:
        if self.instance_label and not LABEL_RE.match(self.instance_label):
            return (
                f"instance_label {self.instance_label!r} is not a Prometheus label name "
                "(letters, digits and '_', not starting with a digit)"
            )
        return None


MetricSourceConfig = PrometheusMetricConfig
"""Every kind of external metric entry (a union once there are more kinds than Prometheus)."""


class MetricsConfig(Section):
    """External metrics by kind of source; each entry's ``name`` is what policies use."""

    prometheus: list[PrometheusMetricConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> MetricsConfig:
        require_unique([m.name for m in self.sources], "metrics")
        return self

    @property
    def sources(self) -> list[MetricSourceConfig]:
        return list(self.prometheus)


def unknown_metric(metric: str, metrics: MetricsConfig) -> str:
    """Why a policy's ``metric`` names nothing ('' when it is built in or defined under [metrics])."""
    names = [m.name for m in metrics.sources]
    if is_builtin(metric) or metric in names:
        return ""
    defined = f"; defined: {', '.join(names)}" if names else ""
    return (
        f"unknown metric {metric!r}; add a [[metrics.prometheus]] entry with name = {metric!r} "
        f"or use a built-in one ({BUILTIN_NAMES}){defined}"
    )


def require_unique(names: list[str], section: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{section}: names must be unique, repeated: {', '.join(dupes)}")
