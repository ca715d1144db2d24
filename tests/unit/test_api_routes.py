"""The REST routes: what a user gets back, and that every mistake is a 4xx JSON error."""

from __future__ import annotations

import math
import warnings

import pytest

with warnings.catch_warnings():  # starlette's note about a future httpx fork; irrelevant here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tests.fakes_control import WRITE_TOKEN, FakeControlPlane, make_api

AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}


@pytest.fixture()
def api() -> tuple[TestClient, FakeControlPlane]:
    app, control = make_api()
    return TestClient(app, headers=AUTH, raise_server_exceptions=True), control


def test_group_and_instances_reflect_the_control_plane(api) -> None:
    client, control = api
    control.scale_up()
    g = client.get("/v1/group").json()
    assert (g["desired"], g["actual"], g["ready"], g["min"], g["max"]) == (2, 2, 2, 1, 4)
    assert g["last_decision"]["direction"] == "up"
    names = [i["name"] for i in client.get("/v1/instances").json()]
    assert names == ["web-1", "web-2"]


def test_set_desired_changes_the_group_and_says_who(api) -> None:
    client, control = api
    resp = client.post("/v1/group/desired", json={"desired": 3})
    assert resp.status_code == 200 and resp.json()["desired"] == 3
    assert control.writes[-1][0:2] == ("desired", 3)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"desired": 9}, 409),  # above max: the control plane's ValueError
        ({"desired": 0}, 409),  # below min
        ({"desired": -1}, 422),
        ({"desired": 10**20}, 422),
        ({"desired": "two"}, 422),
        ({"desired": 2.5}, 422),
        ({}, 422),
        ({"desired": 2, "extra": 1}, 422),
        ([2], 422),
        (None, 422),
    ],
    ids=[
        "above-max",
        "below-min",
        "negative",
        "huge",
        "string",
        "float",
        "missing",
        "extra",
        "list",
        "no-body",
    ],
)
def test_bad_desired_is_a_json_4xx(api, body, status) -> None:
    client, control = api
    resp = (
        client.post("/v1/group/desired", json=body) if body is not None else client.post("/v1/group/desired")
    )
    assert resp.status_code == status, resp.text
    err = resp.json()
    assert set(err) == {"error", "detail"}
    assert control.desired == 1
    if status == 409:
        assert "outside" in err["detail"]


def test_malformed_json_is_422(api) -> None:
    client, _ = api
    resp = client.post(
        "/v1/group/desired", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and resp.json()["error"]


def test_pause_and_resume(api) -> None:
    client, control = api
    assert client.post("/v1/group/pause").json()["paused"] is True
    assert control.paused
    assert client.post("/v1/group/resume").json()["paused"] is False
    assert [w[0:2] for w in control.writes] == [("paused", True), ("paused", False)]


def test_decisions_limit_and_history_since(api) -> None:
    client, control = api
    for _ in range(3):
        control.clock.advance(1)
        control.tick()
    t_mid = control.history()[1]["t"]
    assert len(client.get("/v1/history").json()) == 3
    assert [h["t"] for h in client.get(f"/v1/history?since={t_mid}").json()] == [t_mid, t_mid + 1]
    control.set_desired(2, "x")
    control.set_desired(3, "x")
    got = client.get("/v1/decisions?limit=1").json()
    assert len(got) == 1 and got[0]["desired"] == 3


@pytest.mark.parametrize(
    "path",
    [
        "/v1/decisions?limit=0",
        "/v1/decisions?limit=abc",
        "/v1/decisions?limit=100000",
        "/v1/history?since=nan",
        "/v1/history?since=-1",
        "/v1/history?since=inf",
        "/v1/history?since=x",
        "/v1/events?types=" + "a" * 600,
    ],
)
def test_bad_query_is_422(api, path) -> None:
    client, _ = api
    resp = client.get(path)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "unprocessable entity"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("DELETE", "/v1/group", 405),
        ("PUT", "/v1/group/desired", 405),
        ("GET", "/static/../x", 404),
        ("GET", "/static/index.htm", 404),
    ],
)
def test_unknown_routes_are_json_errors(api, method, path, status) -> None:
    client, _ = api
    resp = client.request(method, path)
    assert resp.status_code == status
    assert set(resp.json()) == {"error", "detail"}


def test_non_finite_figures_become_null(api) -> None:
    client, control = api
    control.set_cpu(math.nan)
    control.tick(latency_p95_s=math.inf)
    assert client.get("/v1/instances").json()[0]["cpu"] is None
    assert client.get("/v1/history").json()[-1]["latency_p95_s"] is None


def test_metrics_are_prometheus_text(api) -> None:
    client, _ = api
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE vmscale_desired_instances gauge" in resp.text


def test_metrics_absent_is_404() -> None:
    app, _ = make_api(metrics=None)
    resp = TestClient(app, headers=AUTH).get("/metrics")
    assert resp.status_code == 404 and "not enabled" in resp.json()["detail"]


def test_dashboard_and_its_assets_are_served(api) -> None:
    client, _ = api
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for src in (
        "/static/app.js",
        "/static/charts.js",
        "/static/style.css",
        "/static/vendor/uplot/uPlot.iife.min.js",
        "/static/vendor/uplot/uPlot.min.css",
        "/static/favicon.svg",
    ):
        assert src in page.text
        assert client.get(src).status_code == 200, src
    assert b"uPlot" in client.get("/static/vendor/uplot/uPlot.iife.min.js").content


def test_openapi_documents_the_routes(api) -> None:
    client, _ = api
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/group", "/v1/instances", "/v1/group/desired", "/v1/events", "/metrics"} <= set(paths)


class TestWithoutTokens:
    def test_loopback_clients_act_as_local(self) -> None:
        app, control = make_api(with_tokens=False)
        client = TestClient(app, client=("127.0.0.1", 50000))
        assert client.post("/v1/group/desired", json={"desired": 2}).status_code == 200
        assert control.writes[-1] == ("desired", 2, "local")

    def test_other_clients_are_refused(self) -> None:
        app, _ = make_api(with_tokens=False)
        client = TestClient(app, client=("192.0.2.7", 50000))  # an address in scope only: no traffic
        resp = client.get("/v1/group")
        assert resp.status_code == 403 and "loopback" in resp.json()["detail"]


def test_controllers_lists_every_controller_and_who_leads(api) -> None:
    client, control = api
    control.stand_by("http://127.0.0.1:8901")
    body = client.get("/v1/controllers").json()
    assert (body["role"], body["leader_id"], body["leader_address"]) == (
        "standby",
        "fake-a",
        "http://127.0.0.1:8901",
    )
    assert [(c["id"], c["leads"], c["this"]) for c in body["controllers"]] == [
        ("fake-a", True, False),
        ("fake-b", False, True),
    ]
    assert client.get("/v1/group").json()["leadership"]["role"] == "standby"


@pytest.mark.parametrize("path", ["/v1/group/desired", "/v1/group/pause", "/v1/group/resume"])
def test_a_standby_refuses_writes_with_409_naming_the_leader(api, path: str) -> None:
    client, control = api
    control.stand_by("http://127.0.0.1:8901")
    resp = client.post(path, json={"desired": 2} if path.endswith("desired") else None)
    assert resp.status_code == 409
    body = resp.json()
    assert body["leader"] == {"id": "fake-a", "address": "http://127.0.0.1:8901"}
    assert "standby" in body["detail"] and "http://127.0.0.1:8901" in body["detail"]
    assert control.writes == []


def test_a_store_that_cannot_be_read_is_a_503_to_retry(api, monkeypatch: pytest.MonkeyPatch) -> None:
    from vmscale.errors import StoreError

    client, control = api

    def unreadable() -> None:
        raise StoreError("postgresql://vmscale@db1/vmscale: connection refused")

    monkeypatch.setattr(control, "group", unreadable)
    resp = client.get("/v1/group")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "2"
    assert "state store is unavailable" in resp.json()["detail"]
