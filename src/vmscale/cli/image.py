"""CLI: ``vmscale image build`` and ``vmscale image info`` (the guest images of the libvirt provider).

Two kinds: ``lean`` (default; direct kernel boot into vmscale's fib backend, ``boot = "kernel"``)
and ``cloud`` (a partitioned Debian disk with cloud-init, for ``boot = "disk"`` groups that run a
service of their own from user-data).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vmscale.cli.options import Output, wants_json
from vmscale.errors import VmscaleError

image_app = typer.Typer(help="Build and inspect the guest image libvirt VMs boot from.", no_args_is_help=True)


class Kind(StrEnum):
    lean = "lean"
    cloud = "cloud"


DEFAULT_OUT = {Kind.lean: Path("/var/lib/vmscale/image"), Kind.cloud: Path("/var/lib/vmscale/cloud-image")}
KIND_OPTION = typer.Option(Kind.lean, "--kind", help="lean: fib backend, boot=kernel; cloud: cloud-init disk")
OUT_OPTION = typer.Option(
    None, "--out", help="output folder (cache); default per kind under /var/lib/vmscale"
)


@image_app.command("build")
def build(
    kind: Kind = KIND_OPTION,
    out: Path | None = OUT_OPTION,
    force: bool = typer.Option(False, "--force", help="rebuild even when the inputs are unchanged"),
    suite: str = typer.Option("bookworm", help="Debian suite to debootstrap"),
    mirror: str = typer.Option("", help="Debian mirror; default = the host's apt mirror"),
) -> None:
    """Debootstrap a minimal Debian guest image from the host's Debian mirror (needs root).

    Cached by a hash of its inputs: a second run with nothing changed returns at once.

    **Examples**

    ```
    vmscale image build                       # the lean image (boot = "kernel")
    vmscale image build --kind cloud          # cloud-init disk; cloud_image = ".../cloud.qcow2"
    vmscale image build --out /var/lib/vmscale/image-test --force
    ```
    """
    folder = out or DEFAULT_OUT[kind]
    if kind is Kind.cloud:
        from vmscale.providers.libvirt.cloudimage import STEPS, build_cloud_image

        builder: Any = build_cloud_image
    else:
        from vmscale.providers.libvirt.image import STEPS, build_image

        builder = build_image
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
            manifest, built = builder(
                folder, force=force, suite=suite, mirror=mirror or None, progress=report
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
    console.print(f"[green]{kind.value} image {manifest.hash} {verb}[/] -> {folder}")
    if kind is Kind.cloud:
        console.print(
            f'use it with: [bold]boot = "disk"[/], [bold]cloud_image = "{folder / "cloud.qcow2"}"[/]'
        )


@image_app.command("info")
def info(
    kind: Kind = KIND_OPTION,
    out: Path | None = OUT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON (= -o json)"),
    output: Output | None = typer.Option(None, "--output", "-o", help="text or json (kubectl style)"),
) -> None:
    """Show a built image's manifest: hash, inputs, kernel, size.

    **Examples**

    ```
    vmscale image info
    vmscale image info --kind cloud -o json | jq .hash
    ```
    """
    as_json = wants_json(as_json, output)
    from dataclasses import asdict

    folder = out or DEFAULT_OUT[kind]
    try:
        if kind is Kind.cloud:
            from vmscale.providers.libvirt.cloudimage import load_cloud_manifest

            manifest: Any = load_cloud_manifest(folder)
        else:
            from vmscale.providers.libvirt.image import load_manifest

            manifest = load_manifest(folder)
    except VmscaleError as exc:
        Console(stderr=True).print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(asdict(manifest), indent=2))
        return
    table = Table(title=f"{kind.value} guest image in {folder}", show_header=False)
    table.add_row("hash", manifest.hash)
    table.add_row("kernel", manifest.kernel_version)
    table.add_row("disk", f"{manifest.disk} ({manifest.size_bytes / 2**20:.0f} MiB)")
    table.add_row("built", f"{manifest.build_seconds:.0f} s (rootfs cache reused: {manifest.reused_rootfs})")
    for key, value in manifest.inputs.items():
        table.add_row(f"input {key}", value)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
