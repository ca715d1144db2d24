"""Command templates of the process provider: what `config check` refuses (with the path and the
fix), and what an instance is given (argv, environment, marker) when it launches."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.config import parse_config
from vmscale.config.command import MARKER_ENV, expand, placeholder_problem
from vmscale.config.process import ProcessProviderConfig
from vmscale.errors import ConfigError
from vmscale.providers.base import InstanceSpec
from vmscale.providers.process_command import (
    LAUNCH_BANNER,
    exit_description,
    instance_argv,
    instance_env,
    log_tail,
)

SPEC = InstanceSpec(group="api", name="api-3", index=3, vcpus=2, workload_args={"fib_max_n": "30"})


def problems_of(process: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"provider": {"process": process}})
    return caught.value.problems


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("--port={port}", ""),
        ("{host}:{port}", ""),
        ("id-{index:03d}", ""),
        ("{{literal}}", ""),
        ("{prot}", "unknown placeholder {prot}; use one of {port}, {name}, {index}, {vcpus}, {host}"),
        ("{}", "unknown placeholder {}"),
        ("{0}", "unknown placeholder {0}"),
        ("{port.real}", "unknown placeholder {port.real}"),
        ("{name!r}", "conversions like !r are not supported"),
        ("{name:d}", "Unknown format code 'd'"),
        ("half {", "write {{ or }} for a literal brace"),
    ],
    ids=[
        "port",
        "two",
        "format-spec",
        "escaped",
        "misspelt",
        "positional",
        "index",
        "attribute",
        "conversion",
        "bad-spec",
        "lone-brace",
    ],
)
def test_placeholders(word: str, expected: str) -> None:
    problem = placeholder_problem(word)
    assert (expected in problem) if expected else problem == ""


def test_a_good_command_is_accepted(tmp_path: Path) -> None:
    cfg = ProcessProviderConfig(
        command=["python3", "-m", "http.server", "{port}", "--bind", "{host}"],
        env={"PORT": "{port}", "APP_ID": "{name}"},
        cwd=str(tmp_path),
    )
    assert cfg.command[0] == "python3"


def test_unknown_program_is_named_with_the_fix() -> None:
    [problem] = problems_of({"command": ["no-such-program-vmscale", "{port}"]})
    assert problem.startswith("provider.process.command:")
    assert "'no-such-program-vmscale' not found on PATH; give its full path" in problem


def test_program_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "serve.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    [problem] = problems_of({"command": [str(script)]})
    assert f"program {script} is not executable (chmod +x it" in problem
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert ProcessProviderConfig(command=[str(script)]).command == [str(script)]


def test_relative_program_is_found_in_cwd(tmp_path: Path) -> None:
    script = tmp_path / "serve.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    assert ProcessProviderConfig(command=["./serve.sh"], cwd=str(tmp_path)).cwd == str(tmp_path)
    [problem] = problems_of({"command": ["./serve.sh"], "cwd": str(tmp_path / "elsewhere")})
    assert problem.startswith("provider.process.cwd:") and "does not exist" in problem


def test_program_on_the_templates_own_path(tmp_path: Path) -> None:
    (tmp_path / "myserver").write_text("#!/bin/sh\n")
    (tmp_path / "myserver").chmod(0o755)
    assert ProcessProviderConfig(command=["myserver"], env={"PATH": str(tmp_path)}).env["PATH"]
    assert problems_of({"command": ["myserver"]})


def test_every_problem_at_its_own_path(tmp_path: Path) -> None:
    problems = problems_of(
        {
            "command": ["{name}", "--port", "{prot}"],
            "env": {"BAD-NAME": "x", MARKER_ENV: "mine"},
            "cwd": str(tmp_path / "missing"),
        }
    )
    joined = "\n".join(problems)
    assert "provider.process.env: 'BAD-NAME' is not a valid variable name" in joined
    assert f"{MARKER_ENV} is set by vmscale itself" in joined
    assert "provider.process.cwd:" in joined
    assert "[2] '{prot}': unknown placeholder {prot}" in joined
    assert "must be a fixed path or name, not a placeholder" in joined


def test_config_check_reports_a_bad_command_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text('[provider.process]\ncommand = ["nope-vmscale-xyz", "{port}"]\n')
    result = CliRunner().invoke(cli_app, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    assert "provider.process.command:" in result.stderr and "not found on PATH" in result.stderr


def test_default_command_is_the_fib_backend_with_its_settings() -> None:
    workers = Path("/state/process/api-3.workers")
    argv = instance_argv(
        ProcessProviderConfig(), SPEC, 18103, python="/py", fib_max_n=35, workers_file=workers
    )
    assert argv == [
        "/py", "-m", "vmscale", "backend", "--host", "127.0.0.1", "--port", "18103",
        "--name", "api-3", "--workers", "2", "--fib-max-n", "30",
        "--workers-file", "/state/process/api-3.workers",
    ]  # fmt: skip


def test_user_command_gets_its_values_and_never_the_workload_args() -> None:
    cfg = ProcessProviderConfig(
        command=["python3", "app.py", "--listen={host}:{port}", "{name}", "{index:02d}"]
    )
    argv = instance_argv(cfg, SPEC, 18103, python="/py", fib_max_n=35, workers_file=Path("/w"))
    assert argv == ["python3", "app.py", "--listen=127.0.0.1:18103", "api-3", "03"]
    assert not any("fib" in word or word == "30" for word in argv)


def test_environment_has_the_marker_and_the_template_but_no_secrets() -> None:
    cfg = ProcessProviderConfig(env={"PORT": "{port}", "WORKERS": "{vcpus}", "PYTHONUNBUFFERED": "0"})
    base = {"HOME": "/root", "VMSCALE_TOKENS": "write s3cret", "VMSCALE_TOKEN": "s3cret", "PATH": "/bin"}
    env = instance_env(cfg, SPEC, 18103, base=base)
    assert env[MARKER_ENV] == "api/api-3"
    assert (env["PORT"], env["WORKERS"], env["HOME"], env["PATH"]) == ("18103", "2", "/root", "/bin")
    assert env["PYTHONUNBUFFERED"] == "0", "the configured env wins over vmscale's defaults"
    assert "VMSCALE_TOKENS" not in env and "VMSCALE_TOKEN" not in env
    assert "VMSCALE_TOKENS" not in instance_env(ProcessProviderConfig(), SPEC, 1, base=dict(os.environ))


def test_expand_fills_every_word() -> None:
    assert expand(["a{port}", "{{x}}"], {"port": 1}) == ["a1", "{x}"]


def test_log_tail_shows_only_the_latest_launch(tmp_path: Path) -> None:
    log = tmp_path / "api-3.log"
    old = "".join(f"old line {i}\n" for i in range(30))
    new = "".join(f"new line {i}\n" for i in range(20))
    log.write_text(f"{LAUNCH_BANNER} api-3 at then\n{old}{LAUNCH_BANNER} api-3 at now: [...]\n{new}")
    tail = log_tail(log)
    assert tail.splitlines() == [f"new line {i}" for i in range(8, 20)]
    assert log_tail(tmp_path / "missing.log") == ""


@pytest.mark.parametrize(
    ("code", "words"),
    [(1, "exited with status 1"), (127, "status 127 (program not found)"), (-9, "killed by signal 9")],
)
def test_exit_descriptions(code: int, words: str) -> None:
    assert words in exit_description(code)
