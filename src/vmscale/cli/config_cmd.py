"""`vmscale config check FILE` and `vmscale config example`.

The example shipped inside the package (``vmscale/config/example.toml``) is the one place
every setting is documented; ``examples/vmscale.toml`` in the repository is the same file,
and a test keeps the two identical and the example valid.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from vmscale.config import VmscaleConfig, load_config
from vmscale.errors import ConfigError

config_app = typer.Typer(
    name="config",
    help="Check a config file, or print a commented example of every setting.",
    no_args_is_help=True,
)


def example_text() -> str:
    """The commented example config, as shipped in the package."""
    return resources.files("vmscale.config").joinpath("example.toml").read_text(encoding="utf-8")


def describe(cfg: VmscaleConfig) -> str:
    """One paragraph saying what the config will do, in words, to confirm it means what was meant."""
    g, t = cfg.group, cfg.template
    start = g.initial_count
    if cfg.provider.kind == "process":
        p = cfg.provider.process
        what = f"`{' '.join(p.command)}`" if p.command else "vmscale's fib backend"
        where = (
            f"local processes running {what} on {p.host}, ports from {p.base_port + 1} "
            f"(CPU limit: {p.cpu_limit})"
        )
    elif cfg.provider.kind == "libvirt":
        lv = cfg.provider.libvirt
        where = f"libvirt VMs on {lv.uri} (acceleration: {lv.accel})"
        if lv.boot == "disk":
            given = f" with the user-data {lv.user_data}" if lv.user_data else " (no user-data)"
            where += f" booted from the cloud image {lv.cloud_image}{given}"
    else:
        where = "the in-memory fake provider (nothing real is started)"
    if cfg.policies:
        pols = "; ".join(_policy_words(p) for p in cfg.policies)
        policies = (
            f"It scales by {len(cfg.policies)} polic{'y' if len(cfg.policies) == 1 else 'ies'}: {pols}."
        )
    else:
        policies = "No scaling policy is configured: the count changes only by hand (`vmscale scale N`)."
    lb = (
        f"HAProxy balances requests on {cfg.lb.haproxy.bind}"
        if cfg.lb.kind == "haproxy"
        else "there is no load balancer (clients follow the event stream)"
    )
    warm = (
        f" A warm pool keeps {cfg.warm_pool.size} instance(s) {cfg.warm_pool.kind}."
        if cfg.warm_pool.size
        else ""
    )
    return (
        f"Group '{g.name}' runs {g.min} to {g.max} instance(s), starting with {start}, as {where}; "
        f"each has {t.vcpus} vCPU(s) and {t.memory_mb} MiB. The controller looks every {g.interval_s:g} s. "
        f"{policies} An instance is ready when {cfg.health.path} answers within {cfg.health.timeout_s:g} s; "
        f"scale-in drains for up to {cfg.drain.timeout_s:g} s.{warm} {lb[0].upper() + lb[1:]}; "
        f"the control API listens on {cfg.api.bind} and state is kept in {cfg.state.dir}."
    )


def _policy_words(p: object) -> str:
    kind = getattr(p, "kind", "?")
    name = getattr(p, "name", kind)
    metric = getattr(getattr(p, "metric", None), "value", getattr(p, "metric", "?"))
    if kind == "target":
        return f"'{name}' holds {metric} near {getattr(p, 'target', '?')}"
    if kind == "threshold":
        lower = getattr(p, "lower", None)
        down = f", in below {lower}" if lower is not None else ""
        return f"'{name}' steps up when {metric} is above {getattr(p, 'upper', '?')}{down}"
    return f"'{name}' ({kind} on {metric})"


@config_app.command()
def check(
    file: Annotated[Path, typer.Argument(help="the config file (TOML)")],
) -> None:
    """Validate a config file: print every problem with its path and exit 2, or print "ok" and
    what the config will do. Nothing is started.

    **Examples**

    ```
    vmscale config check vmscale.toml
    vmscale config example > my.toml && vmscale config check my.toml
    ```
    """
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        typer.echo(f"{exc.source}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    typer.echo("ok")
    for note in cfg.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(describe(cfg))


@config_app.command()
def example() -> None:
    """Print a commented example config with every setting and its default.

    **Examples**

    ```
    vmscale config example > vmscale.toml
    ```
    """
    typer.echo(example_text(), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
