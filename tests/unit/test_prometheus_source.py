"""The Prometheus metric source against a fake HTTP transport: how each kind of answer becomes
values or "no data" with a note a person can act on. The real server is in
tests/integration/test_prometheus_real.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from vmscale.clock import FakeClock
from vmscale.config.metrics import PrometheusMetricConfig
from vmscale.metrics_sources import PrometheusSource, Reading

INSTANCES = ["web-1", "web-2", "web-3"]


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [1.7e9, v]} for m, v in series]},
    }


def inst(name: str, value: str, **labels: str) -> tuple[dict[str, str], str]:
    return {"vmscale_instance": name, **labels}, value


def read(
    body: Any,
    *,
    status: int = 200,
    instances: list[str] = INSTANCES,
    seen: list[httpx.Request] | None = None,
    **cfg: Any,
) -> Reading:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, Exception):
            raise body
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    config = PrometheusMetricConfig(name="queue", query=cfg.pop("query", "queue_length"), **cfg)
    source = PrometheusSource(config, clock=FakeClock(), transport=httpx.MockTransport(handler))
    try:
        return source.read(instances)
    finally:
        source.close()


def test_the_request_is_an_instant_query_with_the_server_timeout(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    seen: list[httpx.Request] = []
    read(
        {"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "1"]}},
        seen=seen,
        url="http://prom.example:9090/prefix/",
        query='sum(x{a="b"})',
        timeout_s=1.5,
        bearer_token_file=str(token),
    )
    (req,) = seen
    assert req.method == "GET" and req.url.path == "/prefix/api/v1/query"
    assert req.url.params["query"] == 'sum(x{a="b"})' and req.url.params["timeout"] == "1.5s"
    assert req.headers["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("body", "cfg", "expected"),
    [
        pytest.param(
            {"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "4.5"]}},
            {},
            4.5,
            id="scalar",
        ),
        pytest.param(vector(({"job": "q"}, "12")), {}, 12.0, id="one-series"),
        pytest.param(vector(), {"on_empty": "zero"}, 0.0, id="empty-as-zero"),
        pytest.param(vector(({}, "0")), {}, 0.0, id="a-real-zero"),
    ],
)
def test_one_value_for_the_group(body: Any, cfg: dict[str, Any], expected: float) -> None:
    reading = read(body, **cfg)
    assert reading.group == expected and reading.has_data and not reading.failed and reading.note == ""
    assert not reading.per_instance


@pytest.mark.parametrize(
    ("body", "cfg", "failed", "words"),
    [
        pytest.param(vector(), {}, False, "query returned no series (on_empty = 'hold'", id="empty-holds"),
        pytest.param(vector(({"job": "q"}, "NaN")), {}, False, '{job="q"} is NaN', id="nan"),
        pytest.param(vector(({}, "+Inf")), {}, False, "is infinite", id="inf"),
        pytest.param(
            vector(({"pod": "a"}, "1"), ({"pod": "b"}, "2")),
            {},
            True,
            "query returned 2 series where one value for the group is needed; aggregate it",
            id="several-series",
        ),
        pytest.param(
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            {},
            True,
            "range vector",
            id="matrix",
        ),
        pytest.param(
            {"status": "success", "data": {"resultType": "string", "result": [1.7e9, "x"]}},
            {},
            True,
            "query returns a string",
            id="string",
        ),
    ],
)
def test_no_value_for_the_group(body: Any, cfg: dict[str, Any], failed: bool, words: str) -> None:
    reading = read(body, **cfg)
    assert reading.group is None and not reading.has_data
    assert reading.failed is failed and words in reading.note, reading.note


def test_per_instance_values_by_label() -> None:
    reading = read(
        vector(
            inst("web-1", "3"),
            inst("web-3", "7.5"),
            inst("other-1", "100"),  # another group's instance: left out
            ({"job": "x"}, "9"),  # no instance label: left out
        ),
        instance_label="vmscale_instance",
    )
    assert reading.per_instance and dict(reading.instances) == {"web-1": 3.0, "web-3": 7.5}
    assert reading.note == "no series for web-2" and not reading.failed


def test_per_instance_empty_as_zero_fills_every_instance() -> None:
    reading = read(vector(), instance_label="vmscale_instance", on_empty="zero")
    assert dict(reading.instances) == dict.fromkeys(INSTANCES, 0.0)
    reading = read(vector(inst("web-2", "4")), instance_label="vmscale_instance", on_empty="zero")
    assert dict(reading.instances) == {"web-1": 0.0, "web-2": 4.0, "web-3": 0.0}


def test_per_instance_when_no_series_names_an_instance_of_the_group() -> None:
    reading = read(vector(inst("api-1", "1"), ({"job": "x"}, "2")), instance_label="vmscale_instance")
    assert not reading.has_data and not reading.failed
    assert (
        "no series has vmscale_instance naming an instance of this group (saw: (no vmscale_instance), api-1)"
        in (reading.note)
    )


def test_per_instance_two_series_for_one_instance_is_an_error_with_the_fix() -> None:
    reading = read(
        vector(inst("web-1", "1", path="/a"), inst("web-1", "2", path="/b")),
        instance_label="vmscale_instance",
    )
    assert reading.failed and not reading.has_data
    assert "several series for instance 'web-1'; aggregate them by (vmscale_instance)" in reading.note


def test_per_instance_with_a_scalar_query() -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "1"]}}
    reading = read(body, instance_label="vmscale_instance")
    assert reading.failed and "keep the label in the result" in reading.note


def test_per_instance_nan_is_missing_for_that_instance() -> None:
    reading = read(vector(inst("web-1", "NaN"), inst("web-2", "2")), instance_label="vmscale_instance")
    assert dict(reading.instances) == {"web-2": 2.0}
    assert "instance web-1 is NaN" in reading.note and "no series for web-1, web-3" in reading.note


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"status": "error", "errorType": kind, "error": message}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        pytest.param(
            error_body("bad_data", '1:5: parse error: unexpected "}"'),
            400,
            'Prometheus rejected the query (bad_data): 1:5: parse error: unexpected "}"',
            id="syntax-error",
        ),
        pytest.param(
            error_body("timeout", "query timed out in expression evaluation"),
            503,
            "Prometheus rejected the query (timeout)",
            id="server-timeout",
        ),
        pytest.param(
            "<html>404 page not found</html>",
            404,
            "answered HTTP 404 but not as the Prometheus API",
            id="html",
        ),
        pytest.param({"hello": "world"}, 200, "not as the Prometheus API", id="other-json"),
        pytest.param({"status": "success"}, 200, "answered without data.resultType", id="no-data"),
        pytest.param(
            vector(({}, "not-a-number")),
            200,
            "malformed value for {}: [1700000000.0, 'not-a-number']",
            id="malformed",
        ),
        pytest.param(
            httpx.ConnectError("[Errno 111] Connection refused"),
            0,
            "cannot reach Prometheus at http://127.0.0.1:9090: ConnectError: [Errno 111] Connection refused",
            id="refused",
        ),
        pytest.param(
            httpx.ReadTimeout("timed out"), 0, "did not answer within timeout_s=2", id="client-timeout"
        ),
    ],
)
def test_failures_are_no_data_with_a_clear_note(body: Any, status: int, words: str) -> None:
    reading = read(body, status=status)
    assert reading.failed and not reading.has_data and reading.group is None
    assert words in reading.note, reading.note


def test_an_unreadable_token_file_is_a_failed_reading(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("x")
    cfg = PrometheusMetricConfig(name="q", query="x", bearer_token_file=str(token))
    token.unlink()  # removed after the config was checked
    source = PrometheusSource(
        cfg, transport=httpx.MockTransport(lambda r: httpx.Response(200, json=vector()))
    )
    reading = source.read(INSTANCES)
    assert reading.failed and "cannot read bearer_token_file" in reading.note


def test_duration_is_measured_on_the_injected_clock() -> None:
    clock = FakeClock()

    def slow(request: httpx.Request) -> httpx.Response:
        clock.advance(0.25)
        return httpx.Response(200, text=json.dumps(vector(({}, "1"))))

    source = PrometheusSource(
        PrometheusMetricConfig(name="q", query="x"), clock=clock, transport=httpx.MockTransport(slow)
    )
    start = clock.now()
    reading = source.read([])
    assert reading.duration_s == pytest.approx(0.25) and reading.t == pytest.approx(start + 0.25)
