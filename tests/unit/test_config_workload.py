"""``[workload.fib]``: the fib backend's settings have their own section; a config of today with
``[template] fib_max_n`` keeps working, and ``config check`` says where the key moved."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.config import parse_config
from vmscale.config.workload import upgrade_legacy
from vmscale.errors import ConfigError


@pytest.mark.parametrize(
    ("data", "max_n", "noted"),
    [
        ({}, 35, False),
        ({"workload": {"fib": {"max_n": 28}}}, 28, False),
        ({"template": {"fib_max_n": 30, "vcpus": 2}}, 30, True),
        ({"template": {"fib_max_n": 30}, "workload": {"fib": {"max_n": 30}}}, 30, True),
    ],
    ids=["defaults", "new-place", "old-place", "both-agree"],
)
def test_fib_max_n_is_read_from_either_place(data: dict[str, object], max_n: int, noted: bool) -> None:
    cfg = parse_config(data)
    assert cfg.workload.fib.max_n == max_n
    assert "fib_max_n" not in cfg.template.model_dump(), "one place holds the value"
    assert bool(cfg.notes) == noted
    if noted:
        assert "template.fib_max_n is deprecated" in cfg.notes[0]
        assert f"[workload.fib] max_n = {max_n}" in cfg.notes[0]


def test_both_places_disagreeing_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"template": {"fib_max_n": 30}, "workload": {"fib": {"max_n": 28}}})
    [problem] = caught.value.problems
    assert (
        "template.fib_max_n (30) and workload.fib.max_n (28) disagree: set only workload.fib.max_n" in problem
    )


def test_a_bad_value_is_reported_once_at_the_new_place() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"template": {"fib_max_n": 99}})
    assert caught.value.problems == ["workload.fib.max_n: Input should be less than or equal to 45"]


def test_upgrade_leaves_the_callers_data_alone() -> None:
    data = {"template": {"fib_max_n": 30}}
    upgraded, notes = upgrade_legacy(data)
    assert data == {"template": {"fib_max_n": 30}}
    assert upgraded["workload"] == {"fib": {"max_n": 30}} and len(notes) == 1
    assert upgrade_legacy("not a table") == ("not a table", ())


def test_config_check_accepts_the_old_key_with_a_note(tmp_path: Path) -> None:
    cfg = tmp_path / "old.toml"
    cfg.write_text("[template]\nvcpus = 1\nfib_max_n = 30\n")
    result = CliRunner().invoke(cli_app, ["config", "check", str(cfg)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok\n")
    assert "note: template.fib_max_n is deprecated" in result.stderr
    assert "[workload.fib] max_n = 30" in result.stderr
