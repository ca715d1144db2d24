"""CLI: ``vmscale image build`` and ``vmscale image info`` (the guest image of the libvirt provider)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vmscale.cli.options import Output, wants_json
from vmscale.errors import VmscaleError

image_app = typer.Typer(help="Build and inspect the guest image libvirt VMs boot from.", no_args_is_help=True)


@image_app.command("build")
def build(
    out: Path = typer.Option(Path("/var/lib/vmscale/image"), "--out", help="output folder (cache)"),
    force: bool = typer.Option(False, "--force", help="rebuild even when the inputs are unchanged"),
    suite: str = typer.Option("bookworm", help="Debian suite to debootstrap"),
    mirror: str = typer.Option("", help="Debian mirror; default = the host's apt mirror"),
) -> None:
    """Debootstrap a minimal Debian with the backend and a lean boot path (needs root).

    Cached by a hash of its inputs: a second run with nothing changed returns at once.

    **Examples**

    ```
    vmscale image build
    vmscale image build --out /var/lib/vmscale/image-test --force
    ```
    """
    from vmscale.providers.libvirt.image import STEPS, build_image

    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        tasks = {step: progress.add_task(f"[dim]{step}", total=1, start=False) for step in STEPS}
        current: list[str] = []

        def report(step: str, detail: str) -> None:
            if current and current[-1] != step:
                progress.update(tasks[current[-1]], completed=1)
            for done in STEPS[: STEPS.index(step)]:
                progress.update(tasks[done], completed=1)
            progress.start_task(tasks[step])
            progress.update(tasks[step], description=f"[bold]{step}[/]: {detail}")
            current.append(step)

        try:
            manifest, built = build_image(
                out, force=force, suite=suite, mirror=mirror or None, progress=report
            )
        except VmscaleError as exc:
            console.print(f"[red]image build failed:[/] {exc}", soft_wrap=True)
            raise typer.Exit(1) from exc
        except PermissionError as exc:
            console.print(f"[red]image build needs root (debootstrap, chroot): {exc}[/]")
            raise typer.Exit(1) from exc
        for task in tasks.values():
            progress.update(task, completed=1)
    verb = f"built in {manifest.build_seconds:.0f} s" if built else "reused (inputs unchanged)"
    console.print(f"[green]image {manifest.hash} {verb}[/] -> {out}")


@image_app.command("info")
def info(
    out: Path = typer.Option(Path("/var/lib/vmscale/image"), "--out", help="image folder"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON (= -o json)"),
    output: Output | None = typer.Option(None, "--output", "-o", help="text or json (kubectl style)"),
) -> None:
    """Show the built image's manifest: hash, inputs, kernel, size.

    **Examples**

    ```
    vmscale image info
    vmscale image info -o json | jq .hash
    ```
    """
    as_json = wants_json(as_json, output)
    from dataclasses import asdict

    from vmscale.providers.libvirt.image import load_manifest

    try:
        manifest = load_manifest(out)
    except VmscaleError as exc:
        Console(stderr=True).print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(asdict(manifest), indent=2))
        return
    table = Table(title=f"guest image in {out}", show_header=False)
    table.add_row("hash", manifest.hash)
    table.add_row("kernel", manifest.kernel_version)
    table.add_row("disk", f"{manifest.disk} ({manifest.size_bytes / 2**20:.0f} MiB)")
    table.add_row("built", f"{manifest.build_seconds:.0f} s (rootfs cache reused: {manifest.reused_rootfs})")
    for key, value in manifest.inputs.items():
        table.add_row(f"input {key}", value)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
