"""`vmscale simulate` end to end (in process): the issue's "done when", JSON and the PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmscale.cli import app

TRACES = Path(__file__).resolve().parents[2] / "examples" / "traces"
CONFIG = """
[group]
min = 1
max = 4
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "vmscale.toml"
    path.write_text(CONFIG)
    return path


def simulate_json(*args: str) -> dict:
    result = CliRunner().invoke(app, ["simulate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_done_when_target_beats_the_original_rule_on_a_step(config: Path) -> None:
    """Step trace: target reaches capacity sooner, with fewer unserved seconds, at no higher cost."""
    doc = simulate_json(
        "--config", str(config), "--trace", str(TRACES / "step.csv"), "--compare", "--no-timeline"
    )
    original = doc["policies"]["original"]["summary"]
    target = doc["policies"]["target"]["summary"]
    assert target["longest_unserved_s"] < original["longest_unserved_s"]
    assert target["unserved_seconds"] < original["unserved_seconds"]
    assert target["instance_seconds"] <= original["instance_seconds"]


def test_done_when_no_policy_flaps_on_a_steady_trace(tmp_path: Path) -> None:
    cfg = tmp_path / "all.toml"
    cfg.write_text(
        CONFIG
        + """
[[policies]]
kind = "target"
[[policies]]
kind = "threshold"
name = "band"
upper = 80
lower = 30
[[policies]]
kind = "step"
lower = 20
"""
    )
    doc = simulate_json(
        "--config", str(cfg), "--trace", str(TRACES / "steady.csv"), "--compare", "--no-timeline"
    )
    assert set(doc["policies"]) == {"original", "target", "band", "step", "config"}
    for name, run in doc["policies"].items():
        assert run["summary"]["reversals"] == 0, name
        assert run["summary"]["final_instances"] >= 2, name  # 1.5 instances of demand is served


def test_json_has_timeline_and_events(config: Path) -> None:
    doc = simulate_json("-c", str(config), "-t", str(TRACES / "step.csv"), "--boot-s", "5")
    run = doc["policies"]["config"]
    assert doc["params"]["boot_s"] == 5
    assert len(run["timeline"]["t"]) == len(run["timeline"]["live"]) == 2401
    assert run["events"][0] == {**run["events"][0], "t": 120.0, "from": 1, "to": 2, "policy": "target"}


def test_out_dir_writes_png_and_text_table(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "-c",
            str(config),
            "-t",
            str(TRACES / "step.csv"),
            "--out",
            str(out),
            "-p",
            "original",
            "-p",
            "target",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "original" in result.stdout and "target" in result.stdout
    assert (out / "simulate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(json.loads((out / "simulate.json").read_text())["policies"]) == {"original", "target"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["-p", "nope"], "unknown policy nope", id="unknown-policy"),
        pytest.param(["--start", "yesterday"], "not an ISO time", id="bad-start"),
    ],
)
def test_usage_errors_exit_2(config: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "-c", str(config), "-t", str(TRACES / "step.csv"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_bad_trace_and_bad_simulate_section_exit_2(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("t,demand\n0,1\n0,1\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[simulate]\nboot_s = -1\n")
    result = CliRunner().invoke(app, ["simulate", "-t", str(trace)])
    assert result.exit_code == 2 and "t must increase" in result.output
    result = CliRunner().invoke(app, ["simulate", "-c", str(cfg), "-t", str(TRACES / "steady.csv")])
    assert result.exit_code == 2 and "simulate.boot_s" in result.output
