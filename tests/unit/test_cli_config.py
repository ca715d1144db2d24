"""`vmscale config check` / `vmscale config example`, and the example config itself: shipped
in the package, identical to examples/vmscale.toml, valid, and documenting every setting."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.cli.config_cmd import example_text
from vmscale.config import VmscaleConfig, parse_config
from vmscale.config.base import Section

REPO = Path(__file__).resolve().parents[2]
# Lines of a commented-out block ("# key = value", "# [[policies]]", "# # a comment").
_COMMENTED_SETTING = re.compile(r"^# (\[|[A-Za-z_][A-Za-z0-9_]* = |#)")


def uncommented(text: str) -> str:
    """The example with its commented-out alternatives (other policy kinds...) switched on."""
    return "\n".join(line[2:] if _COMMENTED_SETTING.match(line) else line for line in text.splitlines())


def sections_in(annotation: Any) -> list[type[Section]]:
    """The config models a field's type mentions (through lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return [annotation]
    found: list[type[Section]] = []
    for arg in typing.get_args(annotation):
        found += sections_in(arg)
    return found


def missing_settings(model: type[BaseModel], data: Any, path: str) -> list[str]:
    """Every setting of ``model`` that ``data`` (the parsed example) does not write out."""
    missing = []
    if not isinstance(data, dict):
        return [f"{path} (expected a table)"]
    for name, field in model.model_fields.items():
        where = f"{path}.{name}" if path else name
        if name not in data:
            missing.append(where)
            continue
        models = sections_in(field.annotation)
        value = data[name]
        if not models:
            continue
        if isinstance(value, list):
            kinds = {m.model_fields["kind"].default: m for m in models if "kind" in m.model_fields}
            if kinds:  # a list of tagged alternatives: every kind must be shown at least once
                for kind, sub in kinds.items():
                    entries = [v for v in value if isinstance(v, dict) and v.get("kind") == kind]
                    missing += (
                        missing_settings(sub, entries[0], f"{where}[kind={kind}]")
                        if entries
                        else [f"{where}[kind={kind}]"]
                    )
            elif value:  # a plain list of tables: each setting shown in at least one of them
                merged = {k: v for table in value if isinstance(table, dict) for k, v in table.items()}
                missing += missing_settings(models[0], merged, f"{where}[]")
        elif isinstance(value, dict):
            missing += missing_settings(models[0], value, where)
    return missing


# The one-group example documents every setting; `groups` (several groups, each with those same
# sections) cannot sit beside them in one file, so the several-groups example shows it.
SHOWN_ELSEWHERE = {"groups"}


def test_packaged_example_is_the_repository_example() -> None:
    assert example_text() == (REPO / "examples" / "vmscale.toml").read_text(encoding="utf-8")
    assert example_text(groups=True) == (REPO / "examples" / "groups.toml").read_text(encoding="utf-8")


def test_example_parses_and_covers_every_top_level_section() -> None:
    data = tomllib.loads(example_text())
    parse_config(data, "example")
    wanted = set(VmscaleConfig.model_fields) - SHOWN_ELSEWHERE
    assert wanted <= set(data), wanted - set(data)


def test_groups_example_runs_several_groups_and_every_top_level_section_is_shown_once() -> None:
    data = tomllib.loads(example_text(groups=True))
    cfg = parse_config(data, "groups example")
    assert [g.group.name for g in cfg.group_settings()] == ["web", "batch"]
    assert all(g.policies for g in cfg.groups), "each group shows its own [[groups.policies]]"
    documented = set(tomllib.loads(example_text())) | set(data)
    assert set(VmscaleConfig.model_fields) <= documented, set(VmscaleConfig.model_fields) - documented


def test_commented_alternatives_are_valid_too() -> None:
    parse_config(tomllib.loads(uncommented(example_text())), "example, uncommented")


def test_example_shows_every_setting() -> None:
    data = tomllib.loads(uncommented(example_text()))
    assert [m for m in missing_settings(VmscaleConfig, data, "") if m not in SHOWN_ELSEWHERE] == []


def test_every_setting_has_a_comment_above_it() -> None:
    lines = uncommented(example_text()).splitlines()
    undocumented = [
        line
        for prev, line in itertools.pairwise(lines)
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]* = ", line) and not prev.lstrip().startswith("#")
    ]
    assert undocumented == []


def test_missing_settings_notices_a_gap() -> None:
    """The coverage check above can fail: drop one setting and it is named."""
    data = tomllib.loads(uncommented(example_text()))
    del data["health"]["timeout_s"]
    missing = [m for m in missing_settings(VmscaleConfig, data, "") if m not in SHOWN_ELSEWHERE]
    assert missing == ["health.timeout_s"]


def test_config_example_prints_the_file() -> None:
    result = CliRunner().invoke(cli_app, ["config", "example"])
    assert result.exit_code == 0
    assert result.stdout == example_text()


def test_config_check_ok_with_a_summary(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text('[group]\nname = "api"\nmin = 2\nmax = 6\n[[policies]]\nkind = "target"\ntarget = 70\n')
    result = CliRunner().invoke(cli_app, ["config", "check", str(cfg)])
    assert result.exit_code == 0, result.output
    first, summary = result.stdout.split("\n", 1)
    assert first == "ok"
    assert "Group 'api' runs 2 to 6 instance(s), starting with 2" in summary
    assert "'target' holds cpu near 70" in summary


def test_config_check_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[group]\nmax = 0\nnmae = "x"\n[[policies]]\nkind = "target"\ntarget = -5\n')
    result = CliRunner().invoke(cli_app, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    assert "3 problem(s)" in result.stderr
    for path in ("group.max:", "group.nmae: unknown setting", "policies[0].target:"):
        assert path in result.stderr, path
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), ("[group\n", "not valid TOML")],
    ids=["missing-file", "broken-toml"],
)
def test_config_check_unreadable(tmp_path: Path, content: str | None, message: str) -> None:
    cfg = tmp_path / "c.toml"
    if content is not None:
        cfg.write_text(content)
    result = CliRunner().invoke(cli_app, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize("command", ["check", "example"])
def test_help_has_examples(command: str) -> None:
    result = CliRunner().invoke(cli_app, ["config", command, "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.stdout and "vmscale config" in result.stdout


def test_the_command_line_starts_without_the_config_schema() -> None:
    """pydantic's models take ~0.2 s to import: only the commands that read a config load them, so
    `vmscale --version`, `status`, `hosts`... answer without that wait (BENCHMARKS.md, CLI start)."""
    probe = "import sys, vmscale.cli; print(sorted(m for m in sys.modules if m.startswith('vmscale.config')))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
