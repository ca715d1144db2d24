"""`vmscale bench NAME [ARGS...]`: run a benchmark from the repository's benchmarks/ folder.

Each benchmark is a script that prints a table and writes benchmarks/results/NAME.json; this
command finds it and runs it with the remaining arguments, so the same figures come from
`vmscale bench scenario` and from `python benchmarks/bench_scenario.py`.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Annotated

import typer

BENCHMARKS = {
    "reaction": "from a load step to the scale-up decision; flapping on a steady load",
    "boot": "decision to serving, per provider and path (process, warm pool, libvirt cold/paused/saved)",
    "scenario": "the original rule, the HPA's defaults and vmscale's variants under step, ramp and bursts",
    "metrics": "cost of one metrics sample for 10, 100 and 1,000 libvirt domains",
    "simulate": "simulator speed: a 24 h, 1 s trace for a 1,000-instance group",
    "haproxy": "runtime-API latency, time to first request, throughput, failures over scale-in cycles",
    "store": "state store write latency per tick (SQLite vs PostgreSQL), ticks/s for 100 groups of 10",
    "prometheus": "a PromQL query to a decision against a real Prometheus; a value change to the query",
    "placement": "placement cost over 100 hosts x 1,000 instances; host facts and listing over libvirt",
    "migration": "live migration of a serving guest between namespaced hosts; drain time for 1, 2, 4 guests",
    "capacity": "call to added capacity serving (TCG): cold boot, warm pools, vCPU hot-add, snapshot clone",
    "decision": "the controller's decision to added capacity serving: the same five paths, through the loop",
    "host-failure": "a host's libvirtd killed: detection, replacement ready, first answer (TCG, netns hosts)",
}
_SCRIPT = {
    "metrics": "bench_libvirt_metrics.py",
    "prometheus": "bench_prometheus_query.py",
    "host-failure": "bench_host_failure.py",
    "takeover": "leader killed -> the standby's first tick as leader, default and test lease settings",
}


def _benchmarks_dir() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "benchmarks", Path.cwd() / "benchmarks"):
        if candidate.is_dir():
            return candidate
    return None


def bench(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="one of: " + ", ".join(BENCHMARKS))],
) -> None:
    """Run a benchmark; extra arguments go to it (try `vmscale bench scenario --help`).

    Benchmarks measure and report (medians of several runs, ratios measured in the same run);
    they never fail because a machine is slow. Results land in benchmarks/results/ and are
    summarised in BENCHMARKS.md.

    Benchmarks:

    * **reaction**: from a load step to the scale-up decision; flapping on a steady load
    * **boot**: decision to serving, per provider and path (cold, paused pool, saved pool)
    * **scenario**: the original rule, the HPA's defaults and vmscale (cold, warm pool,
      vertical-first, clones) under a step, a ramp and bursts: seconds over SLO, instance- and
      vCPU-seconds (add `--provider libvirt` for TCG guests)
    * **metrics**: one metrics sample for 10/100/1,000 libvirt domains
    * **simulate**: simulator speed on a 24 h trace for 1,000 instances
    * **haproxy**: balancer runtime API and loss-free scale-in
    * **store**: state store writes per tick, SQLite vs PostgreSQL (starts a throw-away server)
    * **prometheus**: query, query to decision, value change to query (real Prometheus)
    * **placement**: one placement decision over 100 hosts, 1,000 placed, drain and consolidation
    * **migration**: live migration of a serving guest (root: network namespaces), drain time
    * **host-failure**: a host's libvirtd killed: to its guest replaced and serving (root)
    * **capacity**: a provider call to added capacity serving, per path (TCG)
    * **decision**: the controller's scale-up decision to added capacity serving, per path
    * **takeover**: two controllers; the leader killed, until the standby has ticked as leader

    Examples:

        vmscale bench scenario --rounds 3 --slo-s 0.5 --slo-s 2

        vmscale bench reaction --runs 5
    """
    if name not in BENCHMARKS:
        typer.echo(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}", err=True)
        raise typer.Exit(2)
    folder = _benchmarks_dir()
    script = folder / _SCRIPT.get(name, f"bench_{name}.py") if folder else None
    if script is None or not script.is_file():
        typer.echo(
            f"benchmark script for {name!r} not found: run from a checkout of vmscale (benchmarks/ folder)",
            err=True,
        )
        raise typer.Exit(2)
    sys.argv = [str(script), *ctx.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise typer.Exit(code) from None


def register(app: typer.Typer) -> None:
    app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        rich_help_panel="Measure",
    )(bench)
