"""`vmscale config check FILE` and `vmscale config example`.

The config schema (pydantic models, ~0.2 s to import) is imported by the command that needs it, so
that every other `vmscale` command starts without it.

The example shipped inside the package (``vmscale/config/example.toml``) is the one place
every setting is documented; ``examples/vmscale.toml`` in the repository is the same file,
and a test keeps the two identical and the example valid.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from vmscale.cli.options import ENV_HELP, JsonOpt, OutputOpt, wants_json
from vmscale.errors import ConfigError

config_app = typer.Typer(
    name="config",
    help="Check a config file, or print a commented example of every setting.",
    no_args_is_help=True,
)


def example_text(groups: bool = False) -> str:
    """The commented example config, as shipped in the package (``groups``: the several-groups one)."""
    name = "example-groups.toml" if groups else "example.toml"
    return resources.files("vmscale.config").joinpath(name).read_text(encoding="utf-8")


@config_app.command(epilog=ENV_HELP)
def check(
    file: Annotated[Path, typer.Argument(help="the config file (TOML)")],
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Validate a config file: print every problem with its path and exit 2, or print "ok" and
    what the config will do. Nothing is started.

    Settings from `VMSCALE_SECTION__KEY` environment variables are applied on top of the file,
    as `vmscale up` would apply them; a problem with one names the variable.

    **Examples**

    ```
    vmscale config check vmscale.toml
    vmscale config example > my.toml && vmscale config check my.toml
    VMSCALE_GROUP__MAX=6 vmscale config check my.toml      # what `up` would run with
    vmscale config check my.toml -o json | jq '.problems[].path'
    ```
    """
    from vmscale.cli.describe import describe
    from vmscale.config import load_config
    from vmscale.config.env import override_names

    env = dict(os.environ)
    try:
        cfg = load_config(file, env=env)
    except ConfigError as exc:
        if wants_json(as_json, output):
            located = getattr(exc, "located", None)
            problems = (
                [p.to_dict() for p in located]
                if located is not None
                else [{"path": "", "message": p, "env_var": ""} for p in exc.problems]
            )
            typer.echo(json.dumps({"ok": False, "source": exc.source, "problems": problems}, indent=2))
        else:
            typer.echo(f"{exc.source}: {len(exc.problems)} problem(s)", err=True)
            for problem in exc.problems:
                typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    overrides = override_names(env)
    if wants_json(as_json, output):
        body = {
            "ok": True,
            "source": str(file),
            "env_overrides": overrides,
            "description": describe(cfg),
            "config": cfg.model_dump(mode="json"),
        }
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo("ok")
    for note in cfg.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(describe(cfg))
    if overrides:
        typer.echo(f"Set from the environment: {', '.join(overrides)}.")


@config_app.command()
def example(
    groups: Annotated[
        bool, typer.Option("--groups", help="several groups in one controller ([[groups]]) instead")
    ] = False,
) -> None:
    """Print a commented example config with every setting and its default.

    With `--groups`, an example of several groups in one controller: the process-wide sections at
    the top and one `[[groups]]` entry per group, each taking the sections the first example shows.

    **Examples**

    ```
    vmscale config example > vmscale.toml
    vmscale config example --groups > groups.toml
    ```
    """
    typer.echo(example_text(groups), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
