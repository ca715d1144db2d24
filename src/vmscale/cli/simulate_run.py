"""What `vmscale simulate` does (``simulate.py`` is its command line): load the config and its
``[simulate]`` table, replay the trace through each policy set, print or write the runs."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from vmscale.config import parse_config
from vmscale.config.policy import SimulateConfig
from vmscale.config.schema import GroupSettings, VmscaleConfig
from vmscale.errors import ConfigError
from vmscale.simulate import (
    MONDAY_1970,
    Run,
    TraceError,
    compare,
    comparison_sets,
    load_trace,
    params_from_config,
    run_to_dict,
    summarise,
)

out = Console()
err = Console(stderr=True)
_EVENTS_SHOWN = 20


def _one_group(cfg: VmscaleConfig, group: str | None) -> GroupSettings:
    """The group a simulation replays: ``--group``, or the only one (``ValueError`` otherwise)."""
    if group is not None:
        try:
            return cfg.settings_of(group)
        except KeyError as exc:
            raise ValueError(f"--group: {exc.args[0]}") from None
    settings = cfg.group_settings()
    if len(settings) > 1:
        names = ", ".join(gs.group.name for gs in settings)
        raise ValueError(f"the config has several groups ({names}): name one with --group NAME")
    return settings[0]


def load_simulation_config(path: Path | None) -> tuple[VmscaleConfig, SimulateConfig]:
    """The group config plus its optional ``[simulate]`` table (read here if the schema lacks it)."""
    if path is None:
        return VmscaleConfig(), SimulateConfig()
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    raw_sim = None if "simulate" in VmscaleConfig.model_fields else data.pop("simulate", None)
    cfg = parse_config(data, str(path), env=os.environ)
    sim = getattr(cfg, "simulate", None)
    if not isinstance(sim, SimulateConfig):
        try:
            sim = SimulateConfig.model_validate(raw_sim or {})
        except ValidationError as exc:
            problems = [f"simulate.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise ConfigError(problems, str(path)) from None
    return cfg, sim


def _start_epoch(text: str | None) -> float:
    if not text:
        return MONDAY_1970
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO time like 2026-11-23T09:00:00+00:00") from None
    if when.tzinfo is None:
        raise typer.BadParameter("give a timezone offset (e.g. +00:00) so schedules are unambiguous")
    return when.timestamp()


def _table(runs: dict[str, Run]) -> Table:
    table = Table(title="simulated runs (same trace, same model)")
    cols = [
        ("policy", "name"),
        ("inst·s", "instance_seconds"),
        ("unserved s", "unserved_seconds"),
        ("longest", "longest_unserved_s"),
        ("unserved work", "unserved_work"),
        ("over peak", "overprovision_peak"),
        ("over mean", "overprovision_mean"),
        ("events", "scale_events"),
        ("reversals", "reversals"),
        ("peak", "peak_instances"),
    ]
    for title, _ in cols:
        table.add_column(title, justify="left" if title == "policy" else "right", no_wrap=title == "policy")
    for run in runs.values():
        s = summarise(run).to_dict()
        table.add_row(*(f"{s[k]:.1f}" if isinstance(s[k], float) else str(s[k]) for _, k in cols))
    return table


def _print_text(runs: dict[str, Run]) -> None:
    out.print(_table(runs))
    for name, run in runs.items():
        out.print(f"\n[bold]{name}[/]: {len(run.changes)} scale event(s)")
        for c in run.changes[:_EVENTS_SHOWN]:
            out.print(
                f"  t={c.t:>8g}s  {c.before:>4} -> {c.after:<4} {c.reason}", markup=False, highlight=False
            )
        if len(run.changes) > _EVENTS_SHOWN:
            out.print(f"  ... {len(run.changes) - _EVENTS_SHOWN} more (use --json for all)")


def simulate(
    trace: Path,
    config: Path | None,
    *,
    json_out: bool,
    out_dir: Path | None,
    policy: Sequence[str],
    compare_all: bool,
    boot_s: float | None,
    start: str | None,
    timeline: bool,
    group: str | None,
) -> None:
    """Run `vmscale simulate` (its options are ``simulate.simulate_cmd``'s): exit 2 with the
    problem on a bad config or trace, else print the runs (and write them to ``out_dir``)."""
    try:
        whole, sim = load_simulation_config(config)
        cfg = _one_group(whole, group)
        data = load_trace(trace)
        sets = comparison_sets(cfg, policy, compare=compare_all)
    except ConfigError as exc:
        err.print(f"[red]invalid config[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    except (TraceError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    params = params_from_config(cfg, sim, boot_s=boot_s, start_epoch=_start_epoch(start))
    runs = compare(sets, data, params)
    doc = {
        "trace": str(trace),
        "params": {f: getattr(params, f) for f in params.__slots__},
        "group": {"min": cfg.group.min, "max": cfg.group.max},
        "policies": {n: run_to_dict(r, timeline=timeline) for n, r in runs.items()},
    }
    if out_dir is not None:
        from vmscale.simulate_plot import plot_runs

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "simulate.json").write_text(json.dumps(doc), encoding="utf-8")
        plot_runs(runs, out_dir / "simulate.png", title=trace.name)
    if json_out:
        typer.echo(json.dumps(doc))
    else:
        _print_text(runs)
        if out_dir is not None:
            out.print(f"\nwrote {out_dir / 'simulate.png'} and {out_dir / 'simulate.json'}")
