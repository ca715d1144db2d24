"""The operator commands against a controller that runs two groups (the real control API over fake
groups, on loopback): every group listed, --group / VMSCALE_GROUP to act on one, and a change
without a group refused with the list of groups."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.fakes_control import WRITE_TOKEN, FakeControlPlane, make_groups_api
from tests.unit.test_cli_ops import GROUP_SCHEMA, INSTANCES_SCHEMA, validate
from vmscale.api.app import serve_in_thread
from vmscale.cli import app as cli_app


@pytest.fixture()
def api() -> Iterator[tuple[str, dict[str, FakeControlPlane]]]:
    app, planes, _ = make_groups_api("web", "batch")
    planes["batch"].scale_up("inflight 9 > 4")
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{handle.port}", planes
    finally:
        handle.stop()


def run(*args: str, group: str | None = None) -> Any:
    env = {"VMSCALE_TOKEN": WRITE_TOKEN, "VMSCALE_API": None, "VMSCALE_GROUP": group, "COLUMNS": "200"}
    return CliRunner().invoke(cli_app, list(args), env=env)


def test_status_lists_every_group(api) -> None:
    url, _ = api
    result = run("status", "--api", url)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "2 group(s)" in lines[0]
    assert any(line.startswith("│ web │ 1 │ 1 │ 1 │ 1 / 4 │ no │ fake │ none │") for line in lines), lines
    assert any("│ batch │ 2 │ 2 │ 2 │ 1 / 4 │ no │" in line and "scale up 1 -> 2" in line for line in lines)


def test_status_json_of_several_groups_is_a_list_of_groups(api) -> None:
    url, _ = api
    doc = json.loads(run("status", "--api", url, "-o", "json").stdout)
    assert [g["name"] for g in doc["groups"]] == ["web", "batch"]
    for g in doc["groups"]:
        validate(GROUP_SCHEMA, g)


@pytest.mark.parametrize("how", ["option", "environment"])
def test_status_of_one_group_is_that_groups_object(api, how: str) -> None:
    url, _ = api
    result = run("status", "--api", url, "--json", *(["--group", "batch"] if how == "option" else []),
                 group="batch" if how == "environment" else None)  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(GROUP_SCHEMA, doc)
    assert (doc["name"], doc["desired"]) == ("batch", 2)


def test_instances_of_every_group_have_a_group_column(api) -> None:
    url, _ = api
    doc = json.loads(run("instances", "--api", url, "--json").stdout)
    validate(INSTANCES_SCHEMA, doc)
    assert [(i["group"], i["name"]) for i in doc["instances"]] == [
        ("web", "web-1"),
        ("batch", "batch-1"),
        ("batch", "batch-2"),
    ]
    table = run("instances", "--api", url).stdout
    header = next(line for line in table.splitlines() if "name" in line and "state" in line)
    assert [cell.strip() for cell in header.split("┃")[1:3]] == ["group", "name"]
    assert any(line.split("│")[1:3] == [" batch ", " batch-2 "] for line in table.splitlines()), table


def test_instances_of_one_group(api) -> None:
    url, _ = api
    doc = json.loads(run("instances", "--api", url, "-g", "web", "--json").stdout)
    assert [i["name"] for i in doc["instances"]] == ["web-1"]


def test_a_change_without_a_group_is_refused_with_the_list_and_changes_nothing(api) -> None:
    url, planes = api
    result = run("scale", "3", "--api", url)
    assert result.exit_code == 2
    assert "several groups (web, batch): name one" in result.output and "--group NAME" in result.output
    assert planes["web"].writes == [] and planes["batch"].writes == []


def test_scale_pause_resume_act_on_the_named_group(api) -> None:
    url, planes = api
    assert run("scale", "3", "--api", url, "--group", "batch").exit_code == 0
    assert run("pause", "--api", url, "--group", "web").exit_code == 0
    assert (planes["batch"].desired, planes["web"].paused, planes["batch"].paused) == (3, True, False)
    assert run("resume", "--api", url, group="web").exit_code == 0
    assert planes["web"].paused is False
    out = run("scale", "2", "--api", url, "--group", "batch").output
    assert "vmscale pause --group batch" in out


def test_an_unknown_group_is_a_usage_error_naming_the_groups(api) -> None:
    url, _ = api
    result = run("status", "--api", url, "--group", "nope")
    assert result.exit_code == 2
    assert "no group 'nope' here; this controller runs 'web', 'batch'" in result.output


def test_logs_of_every_group_say_which_group_each_decision_is(api) -> None:
    url, planes = api
    planes["web"].clock.advance(5)  # after batch's scale-up
    planes["web"].set_desired(2, "alice")
    lines = run("logs", "--api", url).stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:3] == ["batch", "decision"] and "scale up 1 -> 2" in lines[0]
    assert lines[1].split()[1:3] == ["web", "decision"] and "by alice" in lines[1]
    rows = [json.loads(line) for line in run("logs", "--api", url, "--json").stdout.splitlines()]
    assert [r["group"] for r in rows] == ["batch", "web"]


def test_logs_of_one_group(api) -> None:
    url, planes = api
    planes["web"].set_desired(2, "alice")
    lines = run("logs", "--api", url, "--group", "web").stdout.splitlines()
    assert len(lines) == 1 and "by alice" in lines[0] and "batch" not in lines[0]


def test_logs_follow_one_group_only(api) -> None:
    url, planes = api
    planes["web"].set_desired(2, "alice")
    result = run("logs", "--api", url, "-f", "--group", "batch", "--types", "endpoints", "--max-events", "1")
    assert result.exit_code == 0, result.output
    assert "ready endpoints: batch-1" in result.stdout and "web-1" not in result.stdout


def test_simulate_replays_the_named_group(tmp_path) -> None:
    config = tmp_path / "groups.toml"
    config.write_text(
        '[[groups]]\ngroup = { name = "web", max = 3 }\n'
        '[[groups]]\ngroup = { name = "batch", max = 6 }\nprovider = { process = { base_port = 18300 } }\n'
    )
    trace = str(Path(__file__).resolve().parents[2] / "examples" / "traces" / "step.csv")
    refused = run("simulate", "-c", str(config), "-t", trace)
    assert (
        refused.exit_code == 2 and "several groups (web, batch): name one with --group NAME" in refused.output
    )
    doc = json.loads(run("simulate", "-c", str(config), "-t", trace, "--group", "batch", "--json").stdout)
    assert doc["group"] == {"min": 1, "max": 6}
    assert run("simulate", "-c", str(config), "-t", trace, "--group", "nope").exit_code == 2
