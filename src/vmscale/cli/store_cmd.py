"""`vmscale store migrate | export | import | status`: look after the state store itself.

Moving an installation from SQLite to PostgreSQL, decision history and all:

    vmscale up -c vmscale.toml --keep-instances   # stop it with Ctrl-C: its instances keep serving
    vmscale store export -c vmscale.toml --out state.jsonl
    # in vmscale.toml: [state] url = "postgresql://vmscale@db1/vmscale", password_file = "..."
    vmscale store import -c vmscale.toml state.jsonl
    vmscale up -c vmscale.toml                    # adopts the running instances
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vmscale.errors import ConfigError, StoreError

if TYPE_CHECKING:  # the store and the config schema load when a command opens a store (slow imports)
    from vmscale.store import SqlStore

store_app = typer.Typer(
    name="store",
    help="Migrate, export, import or inspect the state store (SQLite or PostgreSQL).",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="use the store of this config's [state] section")
]
UrlOpt = Annotated[
    str, typer.Option("--url", help="or name the store: a SQLite path, sqlite:///PATH or postgresql://...")
]
PasswordOpt = Annotated[
    str, typer.Option("--password-file", help="with --url: file whose first line is the PostgreSQL password")
]


def _open(config: Path | None, url: str, password_file: str) -> tuple[SqlStore, str]:
    """The store (migrated forward) and the lease scope the config implies ("" with --url)."""
    from vmscale.config import load_config
    from vmscale.leader import scope_of
    from vmscale.store import open_state_store, open_store

    if (config is None) == (not url):
        typer.echo("error: give either --config FILE or --url URL", err=True)
        raise typer.Exit(2)
    try:
        if config is not None:
            cfg = load_config(config)
            state_dir = Path(cfg.state.dir).expanduser().resolve()
            return open_state_store(cfg.state, state_dir), scope_of(cfg)
        return open_store(url, password_file=password_file), ""
    except ConfigError as exc:
        typer.echo(f"invalid config {exc}", err=True)
        raise typer.Exit(2) from None
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _counts(found: dict[str, int]) -> str:
    return ", ".join(f"{table} {n}" for table, n in found.items())


@store_app.command()
def migrate(config: ConfigOpt = None, url: UrlOpt = "", password_file: PasswordOpt = "") -> None:
    """Bring the store's schema up to this vmscale's version (every start does this too), and say
    from which version. A store written by a newer vmscale is refused, untouched (exit 1).

    **Examples**

    ```
    vmscale store migrate -c vmscale.toml
    vmscale store migrate --url postgresql://vmscale@db1/vmscale --password-file /etc/vmscale/pgpassword
    ```
    """
    store, _scope = _open(config, url, password_file)
    try:
        assert store.upgrade is not None  # every backend migrates on open
        typer.echo(f"{store.url}: {store.upgrade.describe()}")
    finally:
        store.close()


@store_app.command("export")
def export_cmd(
    config: ConfigOpt = None,
    url: UrlOpt = "",
    password_file: PasswordOpt = "",
    out: Annotated[
        Path, typer.Option("--out", "-o", help="the JSON-lines file to write ('-' = stdout)")
    ] = Path("-"),
) -> None:
    """Write every group, instance, transition and decision to a JSON-lines file, from one
    consistent snapshot; the counts go to stderr. Stop the controller first (`vmscale up
    --keep-instances`, then Ctrl-C), or what it decides after the snapshot is not in the file.

    **Examples**

    ```
    vmscale store export -c vmscale.toml --out state.jsonl
    ```
    """
    from vmscale.store.transfer import export_to

    store, scope = _open(config, url, password_file)
    try:
        if scope:
            leader = store.leases(scope).current()
            if leader is not None and leader.held:
                typer.echo(
                    f"warning: controller {leader.holder} ({leader.address}) leads {scope!r} right now; "
                    "what it writes after this snapshot will not be in the export",
                    err=True,
                )
        if str(out) == "-":
            written = export_to(store, sys.stdout)
        else:
            with out.open("w", encoding="utf-8") as f:
                written = export_to(store, f)
    except (StoreError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"exported from {store.url}: {_counts(written)}", err=True)


@store_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="a file written by `vmscale store export`")],
    config: ConfigOpt = None,
    url: UrlOpt = "",
    password_file: PasswordOpt = "",
    force: Annotated[
        bool,
        typer.Option("--force", help="replace what a non-empty store holds (never while a controller leads)"),
    ] = False,
) -> None:
    """Load an export into an empty store, in one transaction (all or nothing), keeping the
    history's order. A non-empty store is refused unless --force; a store a controller leads is
    always refused. Prints the counts.

    **Examples**

    ```
    vmscale store import -c vmscale.toml state.jsonl
    vmscale store import --url postgresql://vmscale@db1/vmscale state.jsonl --force
    ```
    """
    from vmscale.store.transfer import import_into, read_export

    try:
        rows = read_export(file)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    store, _scope = _open(config, url, password_file)
    try:
        loaded = import_into(store, rows, force=force)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"imported into {store.url}: {_counts(loaded)}")


@store_app.command()
def status(
    config: ConfigOpt = None,
    url: UrlOpt = "",
    password_file: PasswordOpt = "",
    cluster: Annotated[
        str, typer.Option("--cluster", help="with --url: the lease scope (cluster name)")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")] = False,
) -> None:
    """Who leads, every controller of the cluster, and what the store holds, read from the store
    itself (works while no controller runs).

    **Examples**

    ```
    vmscale store status -c vmscale.toml
    vmscale store status --url postgresql://vmscale@db1/vmscale --cluster web --json
    ```
    """
    from vmscale.store.transfer import counts

    store, scope = _open(config, url, password_file)
    scope = cluster or scope
    try:
        leases = store.leases(scope) if scope else None
        leader = leases.current() if leases is not None else None
        controllers = leases.controllers() if leases is not None else []
        found = counts(store)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    data: dict[str, Any] = {
        "store": store.url,
        "cluster": scope,
        "leader": None
        if leader is None or not leader.held
        else {"id": leader.holder, "epoch": leader.epoch, "address": leader.address, "age_s": leader.age_s},
        "epoch": leader.epoch if leader is not None else 0,
        "controllers": [
            {
                "id": c.id,
                "address": c.address,
                "role": c.role,
                "leads": c.leads,
                "last_seen_s": c.last_seen_age_s,
            }
            for c in controllers
        ],
        "rows": found,
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"store    {store.url}  ({_counts(found)})")
    if scope:
        lead = data["leader"]
        who = f"{lead['id']} at {lead['address']}, epoch {lead['epoch']}" if lead else "nobody"
        typer.echo(f"cluster  {scope}: led by {who}")
        for c in controllers:
            mark = "*" if c.leads else " "
            typer.echo(f"  {mark} {c.id:<40} {c.role:<8} {c.address:<22} seen {c.last_seen_age_s:.1f} s ago")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
