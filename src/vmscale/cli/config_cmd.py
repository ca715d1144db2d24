"""`vmscale config check FILE` and `vmscale config example`.

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
from vmscale.config import VmscaleConfig, load_config
from vmscale.config.env import override_names
from vmscale.config.hosts import ClusterConfig
from vmscale.config.policy import SchedulePolicyConfig
from vmscale.config.schema import GroupSettings
from vmscale.errors import ConfigError
from vmscale.policy import DEFAULT_POLICY
from vmscale.policy.schedule import entry_words

config_app = typer.Typer(
    name="config",
    help="Check a config file, or print a commented example of every setting.",
    no_args_is_help=True,
)


def example_text(groups: bool = False) -> str:
    """The commented example config, as shipped in the package (``groups``: the several-groups one)."""
    name = "example-groups.toml" if groups else "example.toml"
    return resources.files("vmscale.config").joinpath(name).read_text(encoding="utf-8")


def describe(cfg: VmscaleConfig) -> str:
    """What the config will do, in words, to confirm it means what was meant: one paragraph per
    group, then where the control API listens and the state is kept."""
    groups = "\n".join(describe_group(gs, cfg.cluster) for gs in cfg.group_settings())
    several = f"{len(cfg.groups)} groups run in one controller. " if len(cfg.groups) > 1 else ""
    if cfg.cluster.hosts:
        c = cfg.cluster
        names = ", ".join(h.name for h in c.hosts)
        several += (
            f"libvirt groups are placed over {len(c.hosts)} hosts ({names}) by {c.placement.strategy}; "
            f"a host silent for {c.unreachable_after_s:g} s has its instances replaced elsewhere. "
        )
    where = f"The control API listens on {cfg.api.bind} and state is kept in {cfg.state.dir}."
    return f"{groups}\n{several}{where}"


def describe_group(cfg: GroupSettings, cluster: ClusterConfig | None = None) -> str:
    """One paragraph about one group (``cluster``: the file's hosts, which libvirt groups use)."""
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
        on = f"{len(cluster.hosts)} libvirt hosts" if cluster is not None and cluster.hosts else lv.uri
        where = f"libvirt VMs on {on} (acceleration: {lv.accel})"
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
        policies = (
            "No [[policies]] are configured, so the default runs: "
            f"{_policy_words(DEFAULT_POLICY)} (the Kubernetes HPA defaults)."
        )
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
        f"each has {t.vcpus} vCPU(s) and {t.memory_mb} MiB.{_sizing_words(cfg)} "
        f"The controller looks every {g.interval_s:g} s. "
        f"{policies} An instance is ready when {cfg.health.path} answers within {cfg.health.timeout_s:g} s; "
        f"scale-in drains for up to {cfg.drain.timeout_s:g} s.{warm} {lb[0].upper() + lb[1:]}."
    ) + _integration_words(cfg)


def _sizing_words(cfg: GroupSettings) -> str:
    """Vertical-first: how far an instance grows in place (empty for horizontal scaling)."""
    if cfg.scaling.mode != "vertical-first":
        return ""
    t = cfg.template
    memory = f", its memory with them up to {t.memory_ceiling} MiB by balloon" if t.has_memory_room else ""
    return (
        f" Vertical first: a ready instance grows in place up to {t.vcpu_ceiling} vCPUs{memory} before "
        f"instances are added, and shrinks back to {t.vcpus} before they are removed."
    )


def _integration_words(cfg: GroupSettings) -> str:
    """External metrics, hooks and notifications, when configured (empty otherwise)."""
    parts = [
        f"'{m.name}' is read from Prometheus at {m.url}" + (" per instance" if m.instance_label else "")
        for m in cfg.metrics.sources
    ]
    for phase, hooks in (("launch", cfg.hooks.launch), ("terminate", cfg.hooks.terminate)):
        if hooks:
            parts.append(f"{phase} hooks run: {', '.join(h.name for h in hooks)}")
    n = cfg.notify
    if n.webhooks:
        parts.append(f"decisions are POSTed to {', '.join(w.url for w in n.webhooks)}")
    if n.file_sd.path:
        parts.append(f"the instances are listed for Prometheus in {n.file_sd.path}")
    if n.original_client.enabled:
        oc = n.original_client
        parts.append(f"the original client is told on {oc.host}:{oc.launching_port} and :{oc.launched_port}")
    text = "; ".join(parts)
    return f" {text[0].upper()}{text[1:]}." if text else ""


def _policy_words(p: object) -> str:
    kind = getattr(p, "kind", "?")
    name = getattr(p, "name", kind)
    metric = getattr(getattr(p, "metric", None), "value", getattr(p, "metric", "?"))
    if kind == "target":
        return f"'{name}' holds {metric} near {getattr(p, 'target', '?'):g}"
    if kind == "threshold":
        lower = getattr(p, "lower", None)
        down = f", in below {lower}" if lower is not None else ""
        return f"'{name}' steps up when {metric} is above {getattr(p, 'upper', '?')}{down}"
    if isinstance(p, SchedulePolicyConfig):
        windows = ", ".join(f"{e.min} from {entry_words(e)}" for e in p.entries)
        return f"'{name}' keeps at least {windows}"
    return f"'{name}' ({kind} on {metric})"


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
