"""Schemathesis fuzzes every operation in /openapi.json: whatever it sends, no 5xx, always JSON errors.

Run with a write token (so inputs reach the handlers rather than stopping at auth) and a high
rate limit (so the fuzzer is not merely measuring the 429 path). The event hub is closed first,
which makes ``/v1/events`` send its first message and end, so the stream is fuzzed too.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, settings

from tests.fakes_control import WRITE_TOKEN, make_api, make_groups_api

app, control = make_api()
app.state.hub.close()
for _ in range(3):
    control.clock.advance(1)
    control.tick(latency_p95_s=0.2)

schema = schemathesis.openapi.from_asgi("/openapi.json", app)

# The same API over two groups: the one-group paths answer 400 without ?group=, names are checked.
groups_app, planes, _ = make_groups_api("web", "batch")
groups_app.state.hub.close()
groups_schema = schemathesis.openapi.from_asgi("/openapi.json", groups_app)
AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}


def check(case: schemathesis.Case) -> None:
    response = case.call(headers=AUTH)
    assert response.status_code < 500, (
        f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    )
    if response.status_code >= 400:
        body = json.loads(response.text)
        assert {"error", "detail"} <= set(body), body
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    check(case)


@groups_schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_with_several_groups(case: schemathesis.Case) -> None:
    check(case)
