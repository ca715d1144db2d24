"""Health probes judge an answer the way Kubernetes probes and HAProxy checks do: any 2xx or 3xx
is healthy (a /healthz answering 204 makes an instance ready), a redirect is not followed, an
expected status narrows or widens that, and a TCP check needs only a connect."""

from __future__ import annotations

import socket

import httpx
import pytest

from vmscale.config import parse_config
from vmscale.config.health import HealthConfig, parse_status_spec
from vmscale.errors import ConfigError
from vmscale.health import HttpHealthChecker, TcpHealthChecker, build_health_checker

ENDPOINT = "http://127.0.0.1:18101"


class Answers:
    """A fake transport: answers /healthz with a fixed status and body, records what was asked."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        return httpx.Response(self.status, content=self.body, headers=self.headers)


def probe(answers: Answers, expected_status: object = "200-399") -> tuple[bool, int | None, str | None]:
    rule = parse_status_spec(expected_status)  # type: ignore[arg-type]
    checker = HttpHealthChecker("/healthz", 1.0, rule, transport=httpx.MockTransport(answers))
    try:
        r = checker.check(ENDPOINT)
    finally:
        checker.close()
    return r.ok, r.inflight, r.error


@pytest.mark.parametrize(
    ("status", "expected_status", "healthy"),
    [
        pytest.param(200, "200-399", True, id="200"),
        pytest.param(204, "200-399", True, id="204-no-content-is-ready"),
        pytest.param(302, "200-399", True, id="302-redirect-is-an-answer"),
        pytest.param(399, "200-399", True, id="399-top-of-range"),
        pytest.param(404, "200-399", False, id="404"),
        pytest.param(500, "200-399", False, id="500"),
        pytest.param(503, "200-399", False, id="503-overloaded-or-starting"),
        pytest.param(204, 200, False, id="only-200-refuses-204"),
        pytest.param(200, 200, True, id="only-200-accepts-200"),
        pytest.param(301, [200, "301-302"], True, id="list-with-range"),
        pytest.param(303, [200, "301-302"], False, id="list-outside-range"),
        pytest.param(404, ["200-299", 404], True, id="a-404-declared-healthy"),
    ],
)
def test_status_rule(status: int, expected_status: object, healthy: bool) -> None:
    ok, _, error = probe(Answers(status), expected_status)
    assert ok is healthy
    if not healthy:
        assert error is not None and f"HTTP {status}" in error


def test_a_redirect_is_not_followed() -> None:
    answers = Answers(302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
    ok, _, _ = probe(answers)
    assert ok
    assert answers.requests == [f"{ENDPOINT}/healthz"]


@pytest.mark.parametrize(
    ("body", "inflight"),
    [
        pytest.param(b'{"status":"ok","inflight":3}', 3, id="fib-backend"),
        pytest.param(b"", None, id="empty-204"),
        pytest.param(b"OK", None, id="plain-text"),
        pytest.param(b'{"inflight":"3"}', None, id="not-an-integer"),
        pytest.param(b'{"inflight":true}', None, id="a-bool-is-not-a-count"),
        pytest.param(b"[1,2]", None, id="json-list"),
    ],
)
def test_inflight_is_an_optional_extra(body: bytes, inflight: int | None) -> None:
    ok, got, _ = probe(Answers(200, body))
    assert ok and got == inflight


def test_transport_errors_are_unhealthy_not_raised() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    checker = HttpHealthChecker(transport=httpx.MockTransport(refuse))
    r = checker.check(ENDPOINT)
    assert not r.ok and r.error is not None and "ConnectError" in r.error


def test_tcp_check_needs_only_a_connect() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        checker = TcpHealthChecker(timeout_s=1.0)
        assert checker.check(f"http://127.0.0.1:{port}").ok
        assert checker.check(f"127.0.0.1:{port}").ok
    closed = checker.check(f"http://127.0.0.1:{port}")  # nobody listens any more
    assert not closed.ok and closed.error is not None and f"127.0.0.1:{port}" in closed.error


def test_tcp_check_reports_an_endpoint_without_a_port() -> None:
    r = TcpHealthChecker().check("http://127.0.0.1")
    assert not r.ok and r.error is not None and "port" in r.error


def test_the_config_picks_the_checker() -> None:
    assert isinstance(build_health_checker(HealthConfig(kind="tcp")), TcpHealthChecker)
    http = build_health_checker(HealthConfig(expected_status=[200, 204]))
    assert isinstance(http, HttpHealthChecker)
    assert http.rule.accepts(204) and not http.rule.accepts(201)
    http.close()


@pytest.mark.parametrize(
    ("spec", "haproxy"),
    [
        pytest.param("200-399", "200-399", id="default"),
        pytest.param(200, "200", id="one-code"),
        pytest.param([204, "200-202", 204], "200-202,204", id="sorted-deduplicated"),
        pytest.param(" 301 - 302 ", "301-302", id="spaces"),
    ],
)
def test_status_spec_renders_for_haproxy(spec: object, haproxy: str) -> None:
    assert parse_status_spec(spec).haproxy() == haproxy  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("2xx", "'2xx' is not a status code or range", id="wildcard"),
        pytest.param("399-200", "the low end first", id="reversed"),
        pytest.param(700, "within 100-599", id="out-of-range"),
        pytest.param([], "empty list", id="empty"),
        pytest.param(True, "not a status code", id="bool"),
    ],
)
def test_a_bad_expected_status_is_one_clear_error_at_its_path(spec: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"health": {"expected_status": spec}})
    text = str(err.value)
    assert "health.expected_status" in text and message in text, text
    assert 'use a code (200), a range ("200-399")' in text


def test_a_bad_path_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"health\.path"):
        parse_config({"health": {"path": "healthz"}})
