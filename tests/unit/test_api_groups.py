"""The control API of a controller that runs several groups: /v1/groups, /v1/groups/{name}/...,
the one-group paths with ?group=, one event stream for all or per group, one /metrics."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():  # starlette's note about a future httpx fork; irrelevant here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tests.fakes_control import WRITE_TOKEN, FakeControlPlane, make_api, make_groups_api
from tests.unit.test_api_sse import messages, next_event
from vmscale.api.app import serve_in_thread
from vmscale.events import EventBus

AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}


@pytest.fixture()
def two() -> tuple[TestClient, dict[str, FakeControlPlane], EventBus]:
    app, planes, bus = make_groups_api("web", "batch")
    return TestClient(app, headers=AUTH, raise_server_exceptions=True), planes, bus


def test_groups_lists_every_group_in_config_order(two) -> None:
    client, planes, _ = two
    planes["batch"].scale_up()
    groups = client.get("/v1/groups").json()
    assert [(g["name"], g["desired"], g["ready"]) for g in groups] == [("web", 1, 1), ("batch", 2, 2)]


def test_each_group_has_its_own_resources(two) -> None:
    client, planes, _ = two
    planes["batch"].scale_up()
    planes["batch"].tick()
    assert client.get("/v1/groups/batch").json()["name"] == "batch"
    names = [i["name"] for i in client.get("/v1/groups/batch/instances").json()]
    assert names == ["batch-1", "batch-2"]
    assert {i["group"] for i in client.get("/v1/groups/batch/instances").json()} == {"batch"}
    assert client.get("/v1/groups/web/endpoints").json() == [
        {"name": "web-1", "url": "http://127.0.0.1:18101"}
    ]
    assert [d["direction"] for d in client.get("/v1/groups/batch/decisions").json()] == ["up"]
    assert client.get("/v1/groups/web/decisions").json() == []
    assert len(client.get("/v1/groups/batch/history").json()) == 1
    assert client.get("/v1/groups/web/history").json() == []


def test_a_write_lands_on_the_named_group_only(two) -> None:
    client, planes, _ = two
    resp = client.post("/v1/groups/batch/desired", json={"desired": 3})
    assert resp.status_code == 200 and resp.json()["name"] == "batch" and resp.json()["desired"] == 3
    assert client.post("/v1/groups/web/pause").json()["paused"] is True
    assert (planes["web"].desired, planes["web"].paused) == (1, True)
    assert (planes["batch"].desired, planes["batch"].paused) == (3, False)
    assert client.post("/v1/groups/web/resume").json()["paused"] is False
    refused = client.post("/v1/groups/web/desired", json={"desired": 9})
    assert refused.status_code == 409 and "outside" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/group"),
        ("GET", "/v1/instances"),
        ("GET", "/v1/endpoints"),
        ("POST", "/v1/group/desired"),
        ("POST", "/v1/group/pause"),
        ("POST", "/v1/group/resume"),
        ("GET", "/v1/decisions"),
        ("GET", "/v1/history"),
    ],
)
def test_one_group_paths_without_a_group_are_refused_with_the_list(two, method: str, path: str) -> None:
    client, planes, _ = two
    body = {"json": {"desired": 2}} if path.endswith("desired") else {}
    resp = client.request(method, path, **body)
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith("this controller runs several groups (web, batch): name one")
    assert (planes["web"].writes, planes["batch"].writes) == ([], [])


def test_one_group_paths_answer_for_the_group_named_by_the_query(two) -> None:
    client, planes, _ = two
    assert client.get("/v1/group", params={"group": "batch"}).json()["name"] == "batch"
    resp = client.post("/v1/group/desired", params={"group": "batch"}, json={"desired": 2})
    assert resp.status_code == 200 and planes["batch"].desired == 2 and planes["web"].desired == 1
    assert [i["name"] for i in client.get("/v1/instances?group=web").json()] == ["web-1"]


@pytest.mark.parametrize("path", ["/v1/groups/nope", "/v1/groups/nope/instances", "/v1/group?group=nope"])
def test_an_unknown_group_is_a_404_naming_the_groups(two, path: str) -> None:
    client, _, _ = two
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.json() == {
        "error": "not found",
        "detail": "no group 'nope' here; this controller runs 'web', 'batch'",
    }


def test_a_one_group_controller_answers_without_and_with_its_name() -> None:
    app, control = make_api()
    client = TestClient(app, headers=AUTH)
    assert client.get("/v1/group").json()["name"] == "web"
    assert client.get("/v1/group?group=web").json()["name"] == "web"
    assert client.get("/v1/groups/web").json() == client.get("/v1/group").json()
    assert [g["name"] for g in client.get("/v1/groups").json()] == ["web"]
    assert client.get("/v1/group?group=batch").status_code == 404
    assert control.writes == []


def test_metrics_carry_every_group_from_one_registry(two) -> None:
    client, _, _ = two
    text = client.get("/metrics").text
    for group in ("web", "batch"):
        assert f'vmscale_reconcile_ticks_total{{group="{group}"}} 0.0' in text
    assert text.count("# TYPE vmscale_reconcile_ticks_total counter") == 1


def test_the_openapi_schema_has_both_sets_of_paths(two) -> None:
    client, _, _ = two
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/groups", "/v1/groups/{name}", "/v1/groups/{name}/desired", "/v1/groups/{name}/events"):
        assert path in paths
    params = {p["name"] for p in paths["/v1/group/desired"]["post"]["parameters"]}
    assert "group" in params


# ---------------------------------------------------------------- the event stream


@pytest.fixture()
def live_two() -> Iterator[tuple[str, dict[str, FakeControlPlane]]]:
    app, planes, _ = make_groups_api("web", "batch", sse_ping_s=0.3)
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{handle.port}", planes
    finally:
        handle.stop()


def stream_events(base: str, path: str, count: int, act: Any) -> list[dict[str, Any]]:
    """The first ``count`` events of the stream at ``path``, ``act()`` run once it is open."""
    with (
        httpx.Client(base_url=base) as client,
        client.stream("GET", path, headers=AUTH, timeout=httpx.Timeout(10.0)) as resp,
    ):
        assert resp.status_code == 200
        it = messages(resp.iter_lines())
        out = [json.loads(next_event(it)["data"])]
        act()
        while len(out) < count:
            out.append(json.loads(next_event(it)["data"]))
        return out


def test_the_stream_without_a_group_carries_every_group_each_event_saying_which(live_two) -> None:
    base, planes = live_two

    def act() -> None:
        planes["batch"].scale_up()
        planes["web"].set_desired(2, "alice")

    evs = stream_events(base, "/v1/events?types=endpoints,decision", 5, act)
    assert [(e["type"], e["group"]) for e in evs[:2]] == [("endpoints", "web"), ("endpoints", "batch")]
    decisions = [(e["group"], e["data"]["desired"]) for e in evs[2:] if e["type"] == "decision"]
    assert decisions == [("batch", 2), ("web", 2)]
    (batch_ready,) = [e for e in evs[2:] if e["type"] == "endpoints"]
    assert batch_ready["group"] == "batch" and len(batch_ready["data"]["endpoints"]) == 2


@pytest.mark.parametrize("path", ["/v1/events?group=batch", "/v1/groups/batch/events"])
def test_a_group_stream_carries_that_group_only(live_two, path: str) -> None:
    base, planes = live_two

    def act() -> None:
        planes["web"].set_desired(3, "alice")  # not batch's business
        planes["batch"].set_desired(4, "bob")

    sep = "&" if "?" in path else "?"
    evs = stream_events(base, f"{path}{sep}types=endpoints,decision", 2, act)
    assert evs[0]["type"] == "endpoints" and evs[0]["group"] == "batch"
    assert [e["url"] for e in evs[0]["data"]["endpoints"]] == ["http://127.0.0.1:18201"]
    assert (evs[1]["type"], evs[1]["group"], evs[1]["data"]["desired"]) == ("decision", "batch", 4)


def test_a_stream_of_an_unknown_group_is_a_404(live_two) -> None:
    base, _ = live_two
    with httpx.Client(base_url=base) as client:
        resp = client.get("/v1/events?group=nope", headers=AUTH, timeout=10)
    assert resp.status_code == 404 and "'web', 'batch'" in resp.json()["detail"]


def test_a_resumed_group_stream_replays_that_groups_missed_events_only(live_two) -> None:
    base, planes = live_two
    seen = planes["web"].events.latest_seq
    planes["web"].set_desired(2, "alice")
    planes["batch"].set_desired(3, "bob")
    planes["web"].set_desired(3, "carol")
    headers = {**AUTH, "Last-Event-ID": str(seen)}
    path = "/v1/events?group=web&types=decision"
    with (
        httpx.Client(base_url=base) as client,
        client.stream("GET", path, headers=headers, timeout=10) as resp,
    ):
        it = messages(resp.iter_lines())
        got = [json.loads(next_event(it)["data"]) for _ in range(2)]
    assert [(e["group"], e["data"]["actor"]) for e in got] == [("web", "alice"), ("web", "carol")]
