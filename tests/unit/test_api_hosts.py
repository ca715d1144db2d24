"""The host routes (GET /v1/hosts, POST /v1/hosts/NAME/cordon|uncordon|drain) over the fake control
plane, and `vmscale hosts` against the real API app served on a loopback port."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():  # starlette's note about a future httpx fork; irrelevant here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tests.fakes_control import READ_TOKEN, WRITE_TOKEN, FakeControlPlane, make_api
from vmscale.api.app import ServerHandle, serve_in_thread
from vmscale.cli import app as cli_app
from vmscale.control import HostInfo
from vmscale.controller.host_events import HostChanged, MigrationStep

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


def with_hosts() -> FakeControlPlane:
    control = FakeControlPlane()
    control.add_instance()
    control.add_host("h1", ["web-1"])
    control.add_host("h2")
    return control


def test_hosts_are_listed_with_what_libvirt_reports_and_the_group_s_instances() -> None:
    app, _ = make_api(with_hosts())
    client = TestClient(app)
    rows = client.get("/v1/hosts", headers=READ).json()
    assert [(h["name"], h["state"], h["instances"]) for h in rows] == [
        ("h1", "up", ["web-1"]),
        ("h2", "up", []),
    ]
    assert rows[0]["memory_free_mb"] == 12000.0 and rows[0]["vcpu_limit"] == 32.0


@pytest.mark.parametrize(
    ("action", "state"), [("cordon", "cordoned"), ("drain", "draining"), ("uncordon", "up")]
)
def test_a_writer_cordons_drains_and_uncordons_and_is_named(action: str, state: str) -> None:
    app, control = make_api(with_hosts())
    client = TestClient(app)
    resp = client.post(f"/v1/hosts/h2/{action}", headers=WRITE)
    assert resp.status_code == 200 and resp.json()["state"] == state
    assert control.writes[-1][:2] == (action, "h2")


def test_a_reader_cannot_drain_and_mistakes_are_clear_4xx() -> None:
    app, _ = make_api(with_hosts())
    client = TestClient(app)
    assert client.post("/v1/hosts/h1/drain", headers=READ).status_code == 403
    assert client.post("/v1/hosts/h1/drain").status_code == 401
    unknown = client.post("/v1/hosts/h9/drain", headers=WRITE)
    assert (
        unknown.status_code == 404 and unknown.json()["detail"] == "unknown host 'h9'; the hosts are: h1, h2"
    )
    assert client.post("/v1/hosts/H%201/drain", headers=WRITE).status_code == 422
    assert client.post("/v1/hosts/h1/reboot", headers=WRITE).status_code == 404


def test_a_group_without_hosts_lists_none_and_refuses_drains_with_409() -> None:
    app, _ = make_api()
    client = TestClient(app)
    assert client.get("/v1/hosts", headers=READ).json() == []
    refused = client.post("/v1/hosts/h1/drain", headers=WRITE)
    assert refused.status_code == 409 and "[[cluster.hosts]]" in refused.json()["detail"]


class DrainingControl(FakeControlPlane):
    """Answers a drain, then reports its progress on the event stream as the controller would."""

    def host_action(self, name: str, action: str, actor: str) -> HostInfo:
        info = super().host_action(name, action, actor)
        if action == "drain":
            threading.Timer(0.2, self._drain, args=(name,)).start()
        return info

    def _drain(self, name: str) -> None:
        self.events.publish(
            MigrationStep("web-1", name, "h2", "started", "drain", "moving web-1 from h1 to h2")
        )
        self.events.publish(
            MigrationStep("web-1", name, "h2", "done", "drain", "web-1 moved from h1 to h2 in 3.1 s")
        )
        self.events.publish(HostChanged("h2", "cordoned", "h2 cordoned by someone else"))
        self.events.publish(
            HostChanged(name, "drain-done", f"drain of {name} finished: moved web-1", stayed=("web-3",))
        )


@pytest.fixture
def served() -> Iterator[tuple[str, FakeControlPlane]]:
    control = DrainingControl()
    control.add_instance()
    control.add_host("h1", ["web-1"])
    control.add_host("h2")
    app, _ = make_api(control, sse_ping_s=0.5)
    handle: ServerHandle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{handle.port}", control
    finally:
        handle.stop()


def run(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), env={"VMSCALE_TOKEN": WRITE_TOKEN})


def test_vmscale_hosts_prints_each_host(served: tuple[str, FakeControlPlane]) -> None:
    api, _ = served
    result = run("hosts", "--api", api)
    assert result.exit_code == 0, result.output
    assert "h1" in result.output and "web-1" in result.output and "11.7/16.0" in result.output
    as_json = run("hosts", "--api", api, "-o", "json")
    assert [h["name"] for h in __import__("json").loads(as_json.output)["hosts"]] == ["h1", "h2"]


def test_drain_follow_prints_the_progress_until_the_drain_ends(served: tuple[str, FakeControlPlane]) -> None:
    api, control = served
    result = run("hosts", "drain", "h1", "--follow", "--api", api)
    lines = result.output.splitlines()
    assert lines == [
        "moving web-1 from h1 to h2",
        "web-1 moved from h1 to h2 in 3.1 s",
        "h2 cordoned by someone else",
        "drain of h1 finished: moved web-1",
    ], result.output
    assert control.writes[-1][:2] == ("drain", "h1")
    assert result.exit_code == 1, "web-3 stayed on h1: the drain did not empty it"


def test_hosts_commands_name_a_missing_host_and_exit_2(served: tuple[str, FakeControlPlane]) -> None:
    api, _ = served
    result = run("hosts", "cordon", "h9", "--api", api)
    assert result.exit_code == 2 and "unknown host 'h9'" in result.output
