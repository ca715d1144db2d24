"""The ``vmscale`` command. Each subcommand family lives in its own module and registers itself.

Exit codes (documented in ``vmscale --help`` and the README):
    0  success
    1  runtime failure (a provider, balancer or controller error)
    2  bad usage or invalid config (nothing was started)
    3  the control API could not be reached
    130 interrupted (Ctrl-C) before a clean stop could finish
"""

from __future__ import annotations

import typer

from vmscale.cli import bench, config_cmd, image, ops, report_cmd, run, simulate, store_cmd, workload

EXIT_CODES = """Exit codes:

* 0 ok · 1 runtime failure · 2 bad usage or invalid config (nothing started)
* 3 control API unreachable · 130 interrupted
"""

app = typer.Typer(
    name="vmscale",
    help="Autoscale a service across virtual machines (libvirt/QEMU) or local processes.\n\n"
    "Start with `vmscale demo`: one overloaded backend, the autoscaler notices, a second starts, "
    "response times fall, and it scales back in when the load ends.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
)


@app.command()
def version() -> None:
    """Print the vmscale version."""
    from vmscale import __version__

    typer.echo(__version__)


for module in (run, ops, config_cmd, workload, simulate, report_cmd, image, bench, store_cmd):
    module.register(app)


def main() -> None:
    app()
