"""The ``vmscale`` command. Each subcommand family lives in its own module and registers itself.

Exit codes (documented in ``vmscale --help`` and the README):
    0  success
    1  runtime failure (a provider, balancer or controller error)
    2  bad usage, invalid config, or a start-up problem to fix first (a port in use, a missing
       library, libvirtd not running); nothing is left running
    3  the control API could not be reached
    130 interrupted (Ctrl-C) before a clean stop could finish
"""

from __future__ import annotations

from typing import Annotated

import typer

from vmscale.cli import bench, config_cmd, hosts, image, ops, report_cmd, run, simulate, store_cmd, workload

EXIT_CODES = """Exit codes:

* 0 ok · 1 runtime failure · 3 control API unreachable · 130 interrupted
* 2 bad usage, invalid config, or a start-up problem to fix first (a port in use, a missing
library, libvirtd not running): one line says what, and nothing is left running
"""

app = typer.Typer(
    name="vmscale",
    help="Autoscale a service across virtual machines (libvirt/QEMU) or local processes.\n\n"
    "Start with `vmscale demo`: one overloaded backend, the autoscaler notices, a second starts, "
    "response times fall, and it scales back in when the load ends.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
)


def _print_version(value: bool) -> None:
    if value:
        from vmscale import __version__

        typer.echo(f"vmscale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", is_eager=True, callback=_print_version, help="print the version"),
    ] = False,
) -> None:
    """Autoscale a service across virtual machines (libvirt/QEMU) or local processes."""


@app.command()
def version() -> None:
    """Print the vmscale version (the same as `vmscale --version`)."""
    from vmscale import __version__

    typer.echo(__version__)


for module in (run, ops, hosts, config_cmd, workload, simulate, report_cmd, image, bench, store_cmd):
    module.register(app)


def main() -> None:
    app()
