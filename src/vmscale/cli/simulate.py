"""`vmscale simulate`: replay a demand trace through the real policy code (the work is in
``simulate_run.py``, imported when the command runs: it needs the config schema, slow to import)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmscale.cli.options import GroupOpt, OutputOpt, wants_json


def simulate_cmd(
    trace: Annotated[
        Path, typer.Option("--trace", "-t", help="CSV with columns t (s) and demand (instances)")
    ],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="config file (TOML); default settings if omitted")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object keyed by policy")] = False,
    output: OutputOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="write simulate.png and simulate.json here")
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", "-p", help="run this policy alone (repeatable; 'original' and 'target' are built in)"
        ),
    ] = None,
    compare_all: Annotated[
        bool,
        typer.Option(
            "--compare", help="side by side: the original rule, target, each configured policy, the whole set"
        ),
    ] = False,
    boot_s: Annotated[
        float | None,
        typer.Option("--boot-s", min=0, help="launch-to-ready delay (default [simulate].boot_s = 10)"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="wall-clock time of t=0, ISO with offset (default 1970-01-05T00:00Z, a Monday)"),
    ] = None,
    timeline: Annotated[bool, typer.Option(help="include the per-step timeline in --json")] = True,
    group: GroupOpt = None,
) -> None:
    """Replay a demand trace through the real policy code (closed loop, no instances started).

    The model: instances are ready `boot_s` after launch; demand is shared over ready instances
    (capped at 100% each, the rest is unserved). Prints cost (instance-seconds), seconds with unserved
    demand, over-provisioning, scale events and direction reversals (flapping).

    Built-in policy names: `original` is the student system's rule (cpu above 75% for 3 samples adds
    one instance, never removes one), run under the config's min/max; `target` is the default policy
    (HPA-style target tracking, cpu 60%). A `[simulate]` table in the config may set boot_s, step_s,
    capacity_rps and base_latency_s. With several groups in the config, `--group NAME` says whose
    policies and bounds to replay.

    Examples:

        vmscale simulate --trace examples/traces/step.csv --compare

        vmscale simulate -c vmscale.toml -t examples/traces/daily.csv --json --out results/

        vmscale simulate -c groups.toml --group batch -t examples/traces/step.csv
    """
    from vmscale.cli.simulate_run import simulate

    simulate(
        trace,
        config,
        json_out=wants_json(as_json, output),
        out_dir=out_dir,
        policy=policy or (),
        compare_all=compare_all,
        boot_s=boot_s,
        start=start,
        timeline=timeline,
        group=group,
    )


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
