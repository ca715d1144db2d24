"""`vmscale report DIR`: rebuild summary.json, the PNG plots and report.html from a run's logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vmscale.cli.options import OutputOpt, wants_json


def report(
    out_dir: Annotated[
        Path,
        typer.Argument(help="folder holding autoscaler.jsonl and client.jsonl (the demo's --out)"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print summary.json to stdout")] = False,
    output: OutputOpt = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="draw the PNGs and report.html")] = True,
    synthetic: Annotated[
        bool,
        typer.Option(
            "--synthetic", help="first write made-up logs of a scale-up and scale-in (try the report)"
        ),
    ] = False,
) -> None:
    """Rebuild a run's report (summary.json, plots, report.html) from its logs.

    Writes summary.json, latency.png, cpu.png, instances.png and a self-contained
    report.html (plots inlined; open it in any browser) into DIR.

    **Examples**

    ```
    vmscale report out/                    # after `vmscale demo --out out/`
    vmscale report out/ --json | jq .latency
    vmscale report /tmp/try --synthetic    # see what a report looks like
    ```
    """
    from vmscale.report import HTML_FILE, write_report

    if synthetic:
        from vmscale.report.synthetic import write_synthetic_logs

        write_synthetic_logs(out_dir)
    try:
        summary = write_report(out_dir, plots=plots)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}. Point at the folder a demo wrote (`vmscale demo --out DIR`).", err=True)
        raise typer.Exit(2) from None
    if wants_json(as_json, output):
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(summary["what_happened"])
    written = ["summary.json"] + (["latency.png", "cpu.png", "instances.png", HTML_FILE] if plots else [])
    typer.echo(f"wrote {', '.join(written)} in {out_dir}")
    if plots:
        typer.echo(f"open {(out_dir / HTML_FILE).resolve().as_uri()}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
