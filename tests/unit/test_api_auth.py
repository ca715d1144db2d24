"""Who may call what: every endpoint with no token, a wrong token, a read token and a write token.

Runs against a real uvicorn on a loopback port so the SSE endpoint is exercised like the others.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes_control import READ_TOKEN, WRITE_TOKEN, FakeControlPlane, make_api
from vmscale.api.app import serve_in_thread

# (method, path, json body, scope needed: None = public)
ENDPOINTS = [
    ("GET", "/healthz", None, None),
    ("GET", "/", None, None),
    ("GET", "/static/app.js", None, None),
    ("GET", "/v1/group", None, "read"),
    ("GET", "/v1/instances", None, "read"),
    ("GET", "/v1/decisions?limit=5", None, "read"),
    ("GET", "/v1/history?since=0", None, "read"),
    ("GET", "/v1/events", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("POST", "/v1/group/desired", {"desired": 2}, "write"),
    ("POST", "/v1/group/pause", None, "write"),
    ("POST", "/v1/group/resume", None, "write"),
]
WHO = {"none": None, "wrong": "not-a-valid-token-123", "read": READ_TOKEN, "write": WRITE_TOKEN}


def expected(needed: str | None, who: str) -> int:
    if needed is None:
        return 200
    if who in ("none", "wrong"):
        return 401
    if needed == "write" and who == "read":
        return 403
    return 200


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FakeControlPlane]]:
    app, control = make_api(sse_ping_s=0.5)
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{handle.port}", control
    finally:
        handle.stop()


def call(
    base: str, method: str, path: str, body: object, token: str | None, query_token: bool = False
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token and not query_token else {}
    if token and query_token:
        path += ("&" if "?" in path else "?") + f"token={token}"
    with (
        httpx.Client(base_url=base, timeout=5.0) as client,
        client.stream(method, path, json=body, headers=headers) as resp,
    ):
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            next(resp.iter_lines())  # the stream is endless: the first line is proof enough
        else:
            resp.read()
        return resp


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize(
    ("method", "path", "body", "needed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_every_endpoint_enforces_its_scope(server, method, path, body, needed, who) -> None:
    base, _ = server
    resp = call(base, method, path, body, WHO[who])
    assert resp.status_code == expected(needed, who), resp.text
    if resp.status_code >= 400:
        err = resp.json()
        assert set(err) == {"error", "detail"}
        assert READ_TOKEN not in resp.text and WRITE_TOKEN not in resp.text
    if resp.status_code == 401:
        assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("who", "status"), [("read", 200), ("write", 200), ("wrong", 401)])
def test_event_stream_accepts_token_in_query(server, who, status) -> None:
    base, _ = server
    assert call(base, "GET", "/v1/events", None, WHO[who], query_token=True).status_code == status


def test_query_token_is_only_for_the_event_stream(server) -> None:
    base, _ = server
    assert call(base, "GET", "/v1/group", None, READ_TOKEN, query_token=True).status_code == 401


def test_writes_record_the_actor_not_the_token(server) -> None:
    base, control = server
    call(base, "POST", "/v1/group/desired", {"desired": 3}, WRITE_TOKEN)
    what, value, actor = control.writes[-1]
    assert (what, value) == ("desired", 3)
    assert actor.startswith("write-") and WRITE_TOKEN not in actor
    last = control.decisions(limit=1)[-1]
    assert last["actor"] == actor
