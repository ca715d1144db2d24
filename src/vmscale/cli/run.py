"""`vmscale up`, `vmscale down` and `vmscale demo`: run a group, remove it, or show it off."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from vmscale import sdnotify
from vmscale.cli.logsetup import LOG_FORMATS, setup_logging
from vmscale.cli.options import ENV_HELP, GroupOpt
from vmscale.errors import ConfigError, ProviderUnavailableError, StartupError, StoreError, VmscaleError

if TYPE_CHECKING:  # the config schema is imported by the commands that load one (it is slow to import)
    from vmscale.config.schema import GroupSettings, VmscaleConfig

err = Console(stderr=True)


def _load(path: Path) -> Any:
    from vmscale.config import load_config

    try:
        return load_config(path, env=os.environ)
    except ConfigError as exc:
        typer.echo(f"invalid config {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr (a person reads it; systemd's journal too), then exit."""
    sdnotify.notify(f"STATUS=failed: {message}")
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def up(
    config: Annotated[Path, typer.Option("--config", "-c", help="the config file (TOML)")],
    keep_instances: Annotated[
        bool,
        typer.Option(
            help="on stop, leave instances running (they keep serving); a controller that another "
            "live controller of its scope can replace always leaves them, and hands over"
        ),
    ] = False,
    log_format: Annotated[
        str, typer.Option(help="text or json (one object per line, tracebacks included, for log shippers)")
    ] = "text",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the autoscaler for the config's group(s) until Ctrl-C or SIGTERM.

    Starts (or adopts, after a crash) each group's instances and balancer, and one control API for
    all of them, then reconciles each group every `group.interval_s`, each on its own loop (a
    group whose provider fails never holds up another). On stop it terminates what it launched,
    unless `--keep-instances`; a later `vmscale up` adopts instances that were kept.

    Several `vmscale up` with the same config and store (`[state] url`, or one SQLite file on one
    host) elect one leader; the others stand by, serve the read API and the dashboard from the
    store, and take over when the leader stops renewing its lease (`[state.lease]`). SIGTERM to a
    leader hands over at once and leaves the instances running while another controller of the
    scope is alive; only the last controller removes them (unless `--keep-instances`).

    Start-up checks first what would make it fail (a port in use, a missing library, libvirtd not
    running, an open bind without tokens) and then exits 2 with one line saying what to change;
    if anything fails later in start-up, whatever it had started is stopped again. Under systemd
    (`Type=notify`) it reports READY=1 once the API answers and restart recovery is done, and
    STOPPING=1 when it stops.

    **Examples**

    ```
    vmscale up -c vmscale.toml
    vmscale up -c vmscale.toml --log-format json --keep-instances
    VMSCALE_GROUP__MAX=6 vmscale up -c vmscale.toml          # the environment wins over the file
    VMSCALE_API__BIND=0.0.0.0:8900 VMSCALE_TOKENS=write:$(cat token) vmscale up -c vmscale.toml
    vmscale up -c groups.toml                # several groups ([[groups]]), one API for all
    VMSCALE_GROUPS__1__GROUP__MAX=8 vmscale up -c groups.toml   # a setting of the second group
    ```
    """
    if log_format not in LOG_FORMATS:
        _fail("--log-format must be text or json", 2)
    setup_logging(log_format, verbose)
    cfg = _load(config)
    for note in cfg.notes:  # deprecated keys that were read under their new name
        logging.getLogger("vmscale.config").warning("%s: %s", config, note)
    from vmscale.service import Service

    try:
        svc = Service(cfg)
    except (ConfigError, StartupError) as exc:
        _fail(f"{exc}", 2)
    except StoreError as exc:  # the state store cannot be opened (unreachable, newer schema...)
        _fail(str(exc), 1)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    for sig in stop_signals:
        signal.signal(sig, lambda *_: svc.request_stop())
    try:
        svc.start()
    except StartupError as exc:
        _fail(str(exc), 2)
    except VmscaleError as exc:
        _fail(str(exc), 1)
    # READY for a standby too: it is up, serving the API; its STATUS says it stands by.
    sdnotify.notify("READY=1", f"STATUS={svc.status_line()}")
    while not svc.wait(0.5):
        pass
    sdnotify.notify("STOPPING=1", f"STATUS={svc.groups_label()}: stopping")
    svc.stop(terminate=not keep_instances)


def down(
    config: Annotated[Path, typer.Option("--config", "-c", help="the config file (TOML)")],
    group: GroupOpt = None,
) -> None:
    """Remove every instance of the config's groups (and their balancers), e.g. after
    `up --keep-instances`; with `--group NAME`, of that group only.

    Uses the provider's own records (process records, libvirt metadata), so it also finds
    instances the database forgot. The group's golden snapshots (`launch = "clone"`) go too.

    **Examples**

    ```
    vmscale down -c vmscale.toml
    vmscale down -c groups.toml --group batch      # one group of several
    ```
    """
    cfg = _load(config)
    from vmscale.service import state_dir_of

    settings = cfg.group_settings()
    if group is not None:
        try:
            settings = [cfg.settings_of(group)]
        except KeyError as exc:
            _fail(f"--group: {exc.args[0]}", 2)
    state = state_dir_of(cfg)
    for gs in settings:
        removed = _remove_group(cfg, gs, state)
        typer.echo(f"group {gs.group.name}: nothing left running ({removed} removed)")


def _remove_group(cfg: VmscaleConfig, gs: GroupSettings, state: Path) -> int:
    """Terminate every instance of one group and stop its balancer; how many were removed."""
    from vmscale.providers.base import Cloner
    from vmscale.service import build_lb, build_provider, group_dir
    from vmscale.store import InstanceRow, open_state_store

    name = gs.group.name
    try:  # the store first: nothing else is opened when it cannot be reached
        store = open_state_store(cfg.state, state)
    except VmscaleError as exc:
        _fail(str(exc), 1)
    try:
        provider = build_provider(gs, state, cfg.cluster)
    except StartupError as exc:
        store.close()
        _fail(str(exc), 2)
    try:
        names = {i.name for i in provider.list(name)} | {r.name for r in store.instances(name)}
        for inst in sorted(names):
            provider.terminate(inst, graceful_timeout_s=gs.launch.terminate_timeout_s)
            row = InstanceRow(inst, name, 0, "gone")
            store.put_instance(row, time.time(), src="?", reason="vmscale down")
            typer.echo(f"terminated {inst}")
        if isinstance(provider, Cloner):  # the golden snapshots (launch = "clone") go with the group
            provider.drop_goldens(name)
        build_lb(gs, group_dir(cfg, gs)).stop()
    except ProviderUnavailableError as exc:
        _fail(str(exc), 2)  # e.g. libvirtd not running: the message says how to start it
    except VmscaleError as exc:
        _fail(str(exc), 1)
    finally:
        provider.close()
        store.close()
    return len(names)


def demo(
    quick: Annotated[
        bool, typer.Option(help="a short scenario: under 45 s with processes, about 90 s with VMs")
    ] = False,
    out: Annotated[Path, typer.Option(help="output folder for logs, plots and report.html")] = Path(
        "out/demo"
    ),
    provider: Annotated[
        str, typer.Option(help="process (default, no hypervisor needed) or libvirt")
    ] = "process",
    lb: Annotated[str, typer.Option(help="none (clients follow the event stream) or haproxy")] = "none",
    api_port: Annotated[int, typer.Option(help="control API and dashboard port on 127.0.0.1")] = 8900,
    keep: Annotated[bool, typer.Option(help="leave the instances running at the end")] = False,
    lb_bind: Annotated[
        str, typer.Option(help="with --lb haproxy: the front address clients use (HOST:PORT)")
    ] = "127.0.0.1:8080",
    lb_stats_bind: Annotated[
        str, typer.Option(help="with --lb haproxy: HAProxy's stats page and /metrics (HOST:PORT)")
    ] = "127.0.0.1:8404",
) -> None:
    """Show autoscaling end to end: one backend is overloaded, a second starts, response times
    fall, and the group scales back in when the load ends.

    The load is calibrated to this machine first (so "high" overloads exactly one instance),
    then runs low -> high -> idle. Open the printed dashboard URL to watch it live. At the end
    OUT holds autoscaler.jsonl, client.jsonl, summary.json, PNG plots and report.html.

    Examples:

        vmscale demo

        vmscale demo --quick --out /tmp/demo

        vmscale demo --lb haproxy            # clients use one front address

        vmscale demo --lb haproxy --lb-bind 127.0.0.1:9080 --lb-stats-bind 127.0.0.1:9404

        vmscale demo --provider libvirt      # real VMs (run `vmscale image build` first)
    """
    if provider not in ("process", "libvirt") or lb not in ("none", "haproxy"):
        err.print("[red]--provider must be process or libvirt; --lb must be none or haproxy[/]")
        raise typer.Exit(2)
    setup_logging("text")
    logging.getLogger().setLevel(logging.WARNING)  # the live view shows what matters
    from vmscale.demo.run import run_demo

    console = Console()
    try:
        summary = run_demo(
            out,
            quick=quick,
            provider=provider,
            lb=lb,
            api_port=api_port,
            keep=keep,
            console=console,
            lb_bind=lb_bind,
            lb_stats_bind=lb_stats_bind,
        )
    except VmscaleError as exc:
        err.print(f"[red]demo failed:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    console.print(f"\n[bold]What happened:[/] {summary.get('what_happened', '')}")
    console.print(f"Report: [link]{(out / 'report.html').resolve()}[/link]")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Run", epilog=ENV_HELP)(up)
    app.command(rich_help_panel="Run", epilog=ENV_HELP)(down)
    app.command(rich_help_panel="Run")(demo)
