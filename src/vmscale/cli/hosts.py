"""`vmscale hosts`: the group's libvirt hosts, and cordon / uncordon / drain, over the control API.

    vmscale hosts                      state, free memory and vCPUs (as libvirt reports them),
                                       the group's instances on each, a drain's progress
    vmscale hosts cordon h2            nothing new is placed on h2
    vmscale hosts uncordon h2          placement may use h2 again (stops a drain)
    vmscale hosts drain h1 --follow    move h1's instances off by live migration, printing progress

Writes need a write token (``VMSCALE_TOKEN`` or ``--token-file``); the wish is recorded by the
controller, so a restarted controller goes on with a drain.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from vmscale.cli.api_client import ApiClient, ApiError, fail, read_token
from vmscale.cli.ops import DEFAULT_API, ApiOpt, JsonOpt, TimeoutOpt, TokenFileOpt
from vmscale.cli.options import GroupOpt, OutputOpt, wants_json

NO_HOSTS = (
    "this group runs without [[cluster.hosts]] (the process provider, or libvirt on one host): "
    "there are no hosts to show"
)
HostArg = Annotated[str, typer.Argument(help="the host's name, as in [[cluster.hosts]] and `vmscale hosts`")]

app = typer.Typer(
    name="hosts",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode="markdown",
)


def _hosts_path(group: str | None, tail: str = "") -> str:
    """``/v1/hosts{tail}``, of the named group when the controller runs several."""
    return f"/v1/hosts{tail}" + (f"?group={quote(group, safe='')}" if group else "")


def _request(api: str, token_file: Path | None, timeout: float, method: str, path: str) -> Any:
    client = ApiClient(api, read_token(token_file), timeout)
    try:
        return client.request(method, path)
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    finally:
        client.close()


def _gib(mb: Any) -> str:
    return f"{mb / 1024:.1f}" if isinstance(mb, int | float) else "–"


def _vcpus(h: dict[str, Any]) -> str:
    """'3/8 ≤32': vCPUs of the running domains, the host's CPUs, and the overcommit limit."""
    running, limit, cpus = h.get("vcpus_running"), h.get("vcpu_limit"), h.get("cpus")
    if running is None or cpus is None:
        return "–"
    return f"{running}/{cpus}" + (f" ≤{limit:g}" if isinstance(limit, int | float) else "")


def print_hosts(rows: list[dict[str, Any]]) -> None:
    if not rows:
        typer.echo(NO_HOSTS)
        return
    table = Table(title=f"{len(rows)} host(s)", title_justify="left")
    table.add_column("host", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("vCPUs", no_wrap=True)
    table.add_column("free/total GiB", no_wrap=True)
    table.add_column("domains", justify="right")
    table.add_column("instances")
    table.add_column("now")
    for h in rows:
        wish = h.get("wish") or {}
        notes = [h.get("activity") or "", h.get("error") or ""]
        if wish.get("actor") and h.get("state") in ("cordoned", "draining"):
            notes.insert(0, f"by {wish['actor']}")
        table.add_row(
            str(h.get("name")),
            str(h.get("state")),
            _vcpus(h),
            f"{_gib(h.get('memory_free_mb'))}/{_gib(h.get('memory_total_mb'))}",
            str(h.get("domains") if h.get("domains") is not None else "–"),
            ", ".join(h.get("instances") or []) or "–",
            "; ".join(n for n in notes if n),
        )
    Console().print(table)


@app.callback()
def hosts(
    ctx: typer.Context,
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """List the group's hosts: state (up, not answering, unreachable, cordoned, draining), vCPUs
    and memory as libvirt reports them, the group's instances on each, and what is happening there
    (a drain's progress, a migration, a host left empty by consolidation).

    **Examples**

    ```
    vmscale hosts
    vmscale hosts -o json | jq '.hosts[] | select(.state != "up") | .name'
    vmscale hosts drain h1 --follow
    vmscale hosts --group web                        # with several groups: whose view of the hosts
    ```
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = _request(api, token_file, timeout, "GET", _hosts_path(group))
    rows = rows if isinstance(rows, list) else []
    if wants_json(as_json, output):
        typer.echo(json.dumps({"hosts": rows}, indent=2))
        return
    print_hosts(rows)


def _wish(
    action: str,
    name: str,
    group: str | None,
    api: str,
    token_file: Path | None,
    timeout: float,
    as_json: bool,
) -> None:
    host = _request(api, token_file, timeout, "POST", _hosts_path(group, f"/{name}/{action}"))
    if as_json:
        typer.echo(json.dumps(host, indent=2))
    else:
        typer.echo(f"{name}: {host.get('state') if isinstance(host, dict) else host}")


CORDON_HELP = """Place nothing new on a host; what runs there stays. `vmscale hosts uncordon` undoes it.

    The wish is recorded by the controller (it survives a restart of `vmscale up`).

    **Examples**

    ```
    vmscale hosts cordon h2
    VMSCALE_TOKEN=... vmscale hosts cordon h2 --api http://10.0.0.5:8900
    ```
    """
UNCORDON_HELP = """Let placement use a host again (a drain in progress stops after the migration under way).

    **Examples**

    ```
    vmscale hosts uncordon h1
    ```
    """


def _wish_command(action: str, help_text: str) -> Callable[..., None]:
    """`cordon` and `uncordon`: one command each, the same options."""

    def command(
        name: HostArg,
        group: GroupOpt = None,
        api: ApiOpt = DEFAULT_API,
        token_file: TokenFileOpt = None,
        timeout: TimeoutOpt = 5.0,
        as_json: JsonOpt = False,
        output: OutputOpt = None,
    ) -> None:
        _wish(action, name, group, api, token_file, timeout, wants_json(as_json, output))

    command.__doc__ = help_text
    return command


app.command("cordon")(_wish_command("cordon", CORDON_HELP))
app.command("uncordon")(_wish_command("uncordon", UNCORDON_HELP))


@app.command()
def drain(
    name: HostArg,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="print the drain's progress until it ends (Ctrl-C stops following)"
        ),
    ] = False,
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Cordon a host and move the group's instances off it by live migration, one at a time.

    Each instance keeps serving while it moves (its address goes with it); one whose migration
    fails stays where it was, serving, and is named when the drain ends. The host stays cordoned
    afterwards. With `--follow`, the progress is printed as it happens and the exit code says how it
    ended: 0 when every instance moved, 1 when some stayed.

    **Examples**

    ```
    vmscale hosts drain h1 --follow
    vmscale hosts drain h1 && vmscale hosts          # progress in the listing
    ```
    """
    as_json = wants_json(as_json, output)
    if not follow:
        _wish("drain", name, group, api, token_file, timeout, as_json)
        return
    client = ApiClient(api, read_token(token_file), timeout)
    try:
        raise typer.Exit(_follow_drain(client, name, group, as_json))
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        typer.echo(f"stopped following; the drain of {name} goes on (see `vmscale hosts`)", err=True)
    finally:
        client.close()


def _follow_drain(client: ApiClient, name: str, group: str | None, as_json: bool) -> int:
    """Connect to the event stream first, then ask for the drain, so no event of it is missed;
    print each host and migration event until the drain ends. Returns the exit code."""
    asked = False
    for ev in client.events(types="endpoints,host,migration", group=group):
        if not asked:
            client.request("POST", _hosts_path(group, f"/{name}/drain"))
            asked = True
        data = ev.get("data") or {}
        if ev.get("type") not in ("host", "migration"):
            continue
        typer.echo(json.dumps(ev) if as_json else f"{data.get('message')}")
        if ev.get("type") == "host" and data.get("host") == name:
            if data.get("what") == "drain-done":
                return 1 if data.get("stayed") else 0
            if data.get("what") == "uncordoned":
                return 1  # someone stopped the drain
    return 1  # the stream ended before the drain did


def register(root: typer.Typer) -> None:
    root.add_typer(app)
