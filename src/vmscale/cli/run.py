"""`vmscale up`, `vmscale down` and `vmscale demo`: run a group, remove it, or show it off."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vmscale.config import load_config
from vmscale.errors import ConfigError, VmscaleError

err = Console(stderr=True)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "t": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


def setup_logging(fmt: str, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


def _load(path: Path) -> Any:
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"[red]invalid config[/] {exc}")
        raise typer.Exit(2) from None


def up(
    config: Annotated[Path, typer.Option("--config", "-c", help="the group's config file (TOML)")],
    keep_instances: Annotated[
        bool, typer.Option(help="on stop, leave instances running (they keep serving)")
    ] = False,
    log_format: Annotated[
        str, typer.Option(help="text or json (one object per line, for log shippers)")
    ] = "text",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the autoscaler for one group until Ctrl-C or SIGTERM.

    Starts (or adopts, after a crash) the group's instances, the balancer and the control API,
    then reconciles every `group.interval_s`. On stop it terminates what it launched, unless
    `--keep-instances`; a later `vmscale up` adopts instances that were kept.

    Examples:

        vmscale up -c vmscale.toml

        vmscale up -c vmscale.toml --log-format json --keep-instances
    """
    if log_format not in ("text", "json"):
        err.print("[red]--log-format must be text or json[/]")
        raise typer.Exit(2)
    setup_logging(log_format, verbose)
    cfg = _load(config)
    for note in cfg.notes:  # deprecated keys that were read under their new name
        logging.getLogger("vmscale.config").warning("%s: %s", config, note)
    from vmscale.service import Service

    try:
        svc = Service(cfg)
    except ConfigError as exc:
        err.print(f"[red]invalid settings[/] {exc}")
        raise typer.Exit(2) from None
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    for sig in stop_signals:
        signal.signal(sig, lambda *_: svc.request_stop())
    try:
        svc.start()
        logging.getLogger("vmscale").info("control API on %s; group %s", svc.api_url, cfg.group.name)
        while not svc.wait(0.5):
            pass
    except VmscaleError as exc:
        err.print(f"[red]error:[/] {exc}")
        svc.stop(terminate=not keep_instances)
        raise typer.Exit(1) from None
    svc.stop(terminate=not keep_instances)


def down(
    config: Annotated[Path, typer.Option("--config", "-c", help="the group's config file (TOML)")],
) -> None:
    """Remove every instance of the group (and its balancer), e.g. after `up --keep-instances`.

    Uses the provider's own records (process records, libvirt metadata), so it also finds
    instances the database forgot.

    Example:

        vmscale down -c vmscale.toml
    """
    cfg = _load(config)
    from vmscale.service import build_lb, build_provider, state_dir_of
    from vmscale.store import InstanceRow, Store

    state = state_dir_of(cfg)
    provider = build_provider(cfg, state)
    store = Store(Path(cfg.state.db) if cfg.state.db else state / "state.db")
    try:
        names = {i.name for i in provider.list(cfg.group.name)} | {
            r.name for r in store.instances(cfg.group.name)
        }
        for name in sorted(names):
            provider.terminate(name, graceful_timeout_s=cfg.launch.terminate_timeout_s)
            store.put_instance(
                InstanceRow(name, cfg.group.name, 0, "gone"), time.time(), src="?", reason="vmscale down"
            )
            typer.echo(f"terminated {name}")
        lb = build_lb(cfg, state)
        if lb is not None:
            lb.stop()
    except VmscaleError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        provider.close()
        store.close()
    typer.echo(f"group {cfg.group.name}: nothing left running ({len(names)} removed)")


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
    app.command(rich_help_panel="Run")(up)
    app.command(rich_help_panel="Run")(down)
    app.command(rich_help_panel="Run")(demo)
