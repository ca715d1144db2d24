"""The CLI with several controllers: a write sent to a standby follows the leader's address once;
`vmscale status` shows every controller and which one leads. Two real HTTP servers on loopback
serve the fake control plane, one leading and one standing by."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.fakes_control import WRITE_TOKEN, FakeControlPlane, make_api
from vmscale.api.app import ServerHandle, serve_in_thread
from vmscale.cli import app as cli_app


def serve(control: FakeControlPlane) -> tuple[ServerHandle, str]:
    app, _ = make_api(control)
    handle = serve_in_thread(app, "127.0.0.1", 0)
    return handle, f"http://127.0.0.1:{handle.port}"


@pytest.fixture
def pair() -> Iterator[tuple[tuple[FakeControlPlane, str], tuple[FakeControlPlane, str]]]:
    leader, standby = FakeControlPlane(), FakeControlPlane()
    leader.add_instance()
    (h1, leader_url), (h2, standby_url) = serve(leader), serve(standby)
    standby.stand_by(leader_url)
    yield (leader, leader_url), (standby, standby_url)
    h1.stop()
    h2.stop()


def run(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), env={"VMSCALE_TOKEN": WRITE_TOKEN, "VMSCALE_API": None})


@pytest.mark.parametrize(
    ("args", "written"),
    [(["scale", "3"], ("desired", 3)), (["pause"], ("paused", True)), (["resume"], ("paused", False))],
)
def test_a_write_sent_to_a_standby_follows_the_leader_once(pair: Any, args: list[str], written: Any) -> None:
    (leader, leader_url), (standby, standby_url) = pair
    result = run(*args, "--api", standby_url)
    assert result.exit_code == 0, result.output
    assert f"{standby_url} is a standby; sending this to the leader at {leader_url}" in result.stderr
    assert leader.writes and leader.writes[-1][:2] == written
    assert standby.writes == []


def test_a_standby_pointing_at_another_standby_is_followed_only_once(pair: Any) -> None:
    (leader, _), (standby, standby_url) = pair
    leader.stand_by(standby_url)  # both claim the other leads (a hand-over in progress)
    result = run("scale", "3", "--api", standby_url)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("is a standby; sending this to the leader") == 1
    assert "refused (HTTP 409)" in result.stderr and "Traceback" not in result.output
    assert leader.writes == [] and standby.writes == []


def test_status_shows_every_controller_and_the_leader(pair: Any) -> None:
    _, (_, standby_url) = pair
    table = run("status", "--api", standby_url)
    assert table.exit_code == 0, table.output
    flat = " ".join(table.stdout.replace("│", " ").split())
    assert "this controller fake-b: standby" in flat
    assert "fake-a at http://127.0.0.1:" in flat and "(epoch 1)" in flat
    assert "leads" in flat and "answered" in flat
    doc = json.loads(run("status", "--api", standby_url, "--json").stdout)
    assert [(c["id"], c["role"]) for c in doc["controllers"]] == [("fake-a", "leader"), ("fake-b", "standby")]
    assert doc["leadership"]["role"] == "standby"
