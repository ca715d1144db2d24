"""Operator commands that talk to a running controller's control API:
`status`, `instances`, `scale N`, `pause`, `resume`, `logs [--follow]`.

They share one small HTTP client with timeouts on every call. Failures map onto the exit
codes documented in ``vmscale --help``: 3 when the API cannot be reached, 2 when the API
rejected what the user typed (HTTP 400/404/409/422), 1 for any other refusal.

``--group NAME`` (``$VMSCALE_GROUP``) picks one group of a controller that runs several
(``vmscale.cli.targets``); `status`, `instances` and `logs` without it show every group. The token comes from
``VMSCALE_TOKEN`` or ``--token-file``, never from the command line (where `ps` would show it).
A write sent to a standby controller is refused with the leader's address; the write commands
send it there once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from vmscale.cli import fmt
from vmscale.cli.api_client import ApiClient, ApiError, fail, listing, read_token
from vmscale.cli.options import GROUPS_HELP, GroupOpt, OutputOpt, wants_json
from vmscale.cli.targets import every_group, group_path, groups_table, with_group

DEFAULT_API = "http://127.0.0.1:8900"

ApiOpt = Annotated[
    str, typer.Option("--api", envvar="VMSCALE_API", help="control API URL (or set VMSCALE_API)")
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="file holding the API token (a bare token, or 'SCOPE TOKEN' lines); without it the "
        "token is read from the VMSCALE_TOKEN environment variable (never from the command line)",
        dir_okay=False,
    ),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for each API call")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="print the API's raw JSON (for scripts); the same as -o json")
]


def _client(api: str, token_file: Path | None, timeout: float) -> ApiClient:
    return ApiClient(api, read_token(token_file), timeout)


def _call(api: str, token_file: Path | None, timeout: float, method: str, path: str, **kw: Any) -> Any:
    """One request; a write refused by a standby is sent once to the leader it names."""

    def work(client: ApiClient) -> Any:
        try:
            return client.request(method, path, **kw)
        except ApiError as exc:
            if method == "GET" or not exc.leader or exc.leader.rstrip("/") == client.base_url:
                raise
            typer.echo(
                f"{client.base_url} is a standby; sending this to the leader at {exc.leader}", err=True
            )
            leader = _client(exc.leader, token_file, timeout)
            try:
                return leader.request(method, path, **kw)  # once: a second refusal is reported as it is
            finally:
                leader.close()

    return _calls(api, token_file, timeout, work)


def _calls(api: str, token_file: Path | None, timeout: float, work: Any) -> Any:
    """``work(client)`` with one client, a refusal ending the command with its exit code."""
    client = _client(api, token_file, timeout)
    try:
        return work(client)
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    finally:
        client.close()


def _controllers(api: str, token_file: Path | None, timeout: float) -> dict[str, Any] | None:
    """``GET /v1/controllers``, or None from a controller without elections (HTTP 404)."""
    client = _client(api, token_file, timeout)
    try:
        body = client.request("GET", "/v1/controllers")
    except ApiError as exc:
        if exc.status == 404:
            return None
        fail(str(exc), exc.exit_code)
    finally:
        client.close()
    return body if isinstance(body, dict) else None


def _controllers_table(who: dict[str, Any]) -> Table:
    table = Table(title=f"controllers of scope {who.get('scope')}", title_justify="left")
    for col in ("id", "role", "address", "last seen", ""):
        table.add_column(col)
    for c in who.get("controllers") or []:
        mark = "leads" if c.get("leads") else ""
        if c.get("this"):
            mark = f"{mark}, answered" if mark else "answered"
        seen = c.get("last_seen_s")
        table.add_row(
            str(c.get("id")),
            str(c.get("role")),
            str(c.get("address") or "–"),
            f"{fmt.duration(seen)} ago" if isinstance(seen, int | float) else "–",
            mark,
        )
    return table


def status(
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Show each group's counts, bounds, provider, balancer and last decision (and, for a group
    that launches snapshot clones, the golden snapshot they are restored from).

    With one group (or `--group NAME`) the group in detail, and its JSON object with `--json`;
    with several, a table of every group, and `{"groups": [...]}` with `--json`.
    Every controller of the scope is listed too, with the one that leads (any controller
    answers: a standby reads the store).

    **Examples**

    ```
    vmscale status
    vmscale status --json | jq .desired
    vmscale status -o json              # the same, as kubectl users type it
    vmscale status --group batch        # one group of several
    vmscale status -o json | jq '.groups[] | {name, desired, ready}'    # several groups
    VMSCALE_API=http://127.0.0.1:8901 vmscale status
    ```
    """
    as_json = wants_json(as_json, output)
    if group:
        g = _call(api, token_file, timeout, "GET", group_path(group))
    else:
        found = _calls(api, token_file, timeout, every_group)
        if len(found) != 1:
            who = _controllers(api, token_file, timeout)
            if as_json:
                typer.echo(
                    json.dumps(
                        {"groups": found, **((who and {"controllers": who["controllers"]}) or {})}, indent=2
                    )
                )
            else:
                Console().print(groups_table(found))
                if who and who.get("controllers"):
                    Console().print(_controllers_table(who))
            return
        g = found[0]
    who = _controllers(api, token_file, timeout)
    if as_json:
        typer.echo(json.dumps({**g, "controllers": who["controllers"]} if who else g, indent=2))
        return
    table = Table(title=f"group {g.get('name')}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    states = ", ".join(f"{k} {v}" for k, v in (g.get("states") or {}).items() if v) or "none"
    last = g.get("last_decision")
    for key, value in [
        ("desired", g.get("desired")),
        ("actual", g.get("actual")),
        ("ready", g.get("ready")),
        ("min / max", f"{g.get('min')} / {g.get('max')}"),
        ("warm", g.get("warm", 0)),
        ("paused", "yes — automatic decisions are off" if g.get("paused") else "no"),
        ("provider", g.get("provider")),
        ("load balancer", g.get("lb")),
        ("frontend", g.get("frontend_url") or "–"),
        ("policies", ", ".join(g.get("policies") or []) or "–"),
        ("states", states),
        ("last decision", (f"{fmt.clock(last.get('t'))} " + fmt.decision_line(last)) if last else "–"),
        *([("clones from", fmt.golden_line(g["golden"]))] if isinstance(g.get("golden"), dict) else []),
        *_leadership_rows(g.get("leadership")),
    ]:
        table.add_row(key, str(value))
    Console().print(table)
    if who and who.get("controllers"):
        Console().print(_controllers_table(who))


def _leadership_rows(lead: Any) -> list[tuple[str, Any]]:
    if not isinstance(lead, dict):
        return []
    leader = lead.get("leader_id") or "nobody right now"
    if lead.get("leader_address"):
        leader += f" at {lead['leader_address']}"
    if lead.get("epoch") is not None:
        leader += f" (epoch {lead['epoch']})"
    return [("this controller", f"{lead.get('id')}: {lead.get('role')}"), ("leader", leader)]


def _every_instance(client: ApiClient) -> tuple[list[dict[str, Any]], bool]:
    """Every group's instances (each row with its group), and whether there are several groups."""
    groups = [str(g.get("name")) for g in every_group(client)]
    if len(groups) == 1:
        return listing(client.request("GET", "/v1/instances"), "instances"), False
    rows: list[dict[str, Any]] = []
    for name in groups:
        rows += with_group(listing(client.request("GET", group_path(name, "/instances")), "instances"), name)
    return rows, True


def instances(
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """List the instances with their state, endpoint and CPU: of every group (with a group
    column when there are several), or of the group `--group` names.

    **Examples**

    ```
    vmscale instances
    vmscale instances --json | jq -r '.instances[] | select(.state=="ready") | .endpoint'
    vmscale instances -o json
    vmscale instances --group web
    vmscale instances -o json | jq -r '.instances[] | [.group, .name] | @tsv'     # several groups
    ```
    """
    as_json = wants_json(as_json, output)
    if group:
        rows = listing(_call(api, token_file, timeout, "GET", group_path(group, "/instances")), "instances")
        several = False
    else:
        rows, several = _calls(api, token_file, timeout, _every_instance)
    if as_json:  # always {"instances": [...]}, whether the API wraps the list or not
        typer.echo(json.dumps({"instances": rows}, indent=2))
        return
    table = Table(title=f"{len(rows)} instance(s)", title_justify="left")
    columns = ("group",) * several + ("name", "state", "endpoint", "vCPUs", "CPU", "up for", "details")
    for col in columns:
        table.add_column(col, justify="right" if col in ("vCPUs", "CPU", "up for") else "left")
    now = time.time()
    for i in rows:
        launched = i.get("launched_at")
        age = fmt.duration(now - launched) if isinstance(launched, int | float) else "–"
        details = ", ".join(f"{k}={v}" for k, v in (i.get("details") or {}).items())
        table.add_row(
            *([str(i.get("group"))] if several else []),
            str(i.get("name")),
            str(i.get("state")),
            str(i.get("endpoint")),
            str(i.get("vcpus")),
            fmt.pct(i.get("cpu")),
            age,
            details,
        )
    Console().print(table)


def _print_group_change(g: Any, as_json: bool, what: str) -> None:
    if as_json:
        typer.echo(json.dumps(g, indent=2))
    elif isinstance(g, dict):
        typer.echo(
            f"{what}; group {g.get('name')}: desired {g.get('desired')}, actual {g.get('actual')}, "
            f"ready {g.get('ready')}, paused {'yes' if g.get('paused') else 'no'}"
        )
    else:
        typer.echo(what)


def scale(
    count: Annotated[
        int, typer.Argument(min=0, help="the instance count wanted, within the group's min..max")
    ],
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Set the desired instance count by hand (recorded with who asked).

    The policies may change it again at their next decision; `vmscale pause` first to hold it.
    Sent to a standby controller, it is refused with the leader's address and sent there once
    (a note on stderr says so).

    **Examples**

    ```
    vmscale scale 3
    vmscale scale 3 --group batch          # one group of several
    VMSCALE_TOKEN=... vmscale scale 1 --api http://10.0.0.5:8900
    ```
    """
    as_json = wants_json(as_json, output)
    g = _call(api, token_file, timeout, "POST", group_path(group, "/desired"), json={"desired": count})
    _print_group_change(g, as_json, f"desired count set to {count}")
    if isinstance(g, dict) and not g.get("paused"):
        typer.echo(
            "note: automatic scaling is on, so the policies may change this at their next decision; "
            "run `vmscale pause" + (f" --group {group}" if group else "") + "` to hold it",
            err=True,
        )


def pause(
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Pause automatic scaling decisions.

    Health checks and the replacement of failed instances go on. Sent to a standby controller,
    it is refused with the leader's address and sent there once (a note on stderr says so).

    **Examples**

    ```
    vmscale pause && vmscale scale 2     # hold the group at 2
    vmscale pause --group batch
    ```
    """
    as_json = wants_json(as_json, output)
    g = _call(api, token_file, timeout, "POST", group_path(group, "/pause"))
    _print_group_change(g, as_json, "automatic scaling paused")


def resume(
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Resume automatic scaling decisions after `vmscale pause`.

    Sent to a standby controller, it is refused with the leader's address and sent there once
    (a note on stderr says so).

    **Examples**

    ```
    vmscale resume
    vmscale resume --group batch
    ```
    """
    as_json = wants_json(as_json, output)
    g = _call(api, token_file, timeout, "POST", group_path(group, "/resume"))
    _print_group_change(g, as_json, "automatic scaling resumed")


def _emit(ev: dict[str, Any], as_json: bool, show_group: bool = False) -> None:
    typer.echo(json.dumps(ev) if as_json else fmt.event_line(ev, show_group=show_group))


def _recent_decisions(client: ApiClient, group: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The last ``limit`` decisions (of ``group``, or of every group merged by time, each saying
    its group), oldest first, and whether several groups are shown."""
    if group:
        body = client.request("GET", group_path(group, "/decisions"), params={"limit": limit})
        return with_group(listing(body, "decisions"), group), False
    names = [str(g.get("name")) for g in every_group(client)]
    if len(names) == 1:
        return listing(client.request("GET", "/v1/decisions", params={"limit": limit}), "decisions"), False
    rows: list[dict[str, Any]] = []
    for name in names:
        body = client.request("GET", group_path(name, "/decisions"), params={"limit": limit})
        rows += with_group(listing(body, "decisions"), name)
    rows.sort(key=lambda d: float(d["t"]) if isinstance(d.get("t"), int | float) else 0.0)
    return rows, True


def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing live events until Ctrl-C")
    ] = False,
    types: Annotated[
        str | None,
        typer.Option(
            help="comma-separated event types: decision,instance,endpoints,tick,error (default: all but tick)"
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="how many recent decisions to show first")] = 20,
    max_events: Annotated[
        int | None, typer.Option(min=1, help="with --follow: stop after this many events")
    ] = None,
    group: GroupOpt = None,
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON event per line ({seq,t,type,group,data}); = -o json")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Show recent scaling decisions, and with --follow every event live: of every group (each
    line saying its group when there are several), or of the group `--group` names.

    Events: instance state changes, decisions, endpoint changes, errors (and ticks on request).

    **Examples**

    ```
    vmscale logs                          # the last 20 decisions with their reasons
    vmscale logs --follow                 # ...then live events until Ctrl-C
    vmscale logs -f --types decision,instance
    vmscale logs -f --json --types tick | jq .data.actual
    vmscale logs -f --group batch         # one group of several
    ```
    """
    as_json = wants_json(as_json, output)
    wanted = {t.strip() for t in types.split(",") if t.strip()} if types else None
    show = (lambda t: t in wanted) if wanted else (lambda t: t != "tick")
    client = _client(api, token_file, timeout)
    try:
        several = False
        if show("decision"):
            decisions, several = _recent_decisions(client, group, limit)
            for d in decisions[-limit:]:
                ev = (
                    d
                    if "type" in d and "data" in d
                    else {"seq": None, "t": d.get("t"), "type": "decision", "data": d}
                )
                if d.get("group") and "group" not in ev:
                    ev = {**ev, "group": d["group"]}
                _emit(ev, as_json, several)
        elif follow and not group:
            several = len(every_group(client)) > 1
        if follow:
            types_param = ",".join(sorted(wanted)) if wanted else None
            _follow(client, show, types_param, max_events, as_json, group, several)
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops following: a normal end
    finally:
        client.close()


def _follow(
    client: ApiClient,
    show: Any,
    types: str | None,
    max_events: int | None,
    as_json: bool,
    group: str | None = None,
    several: bool = False,
) -> None:
    """Print the stream; reconnect (resuming after the last event seen: the server replays what
    was missed, or sends a ``reset`` event when it cannot) when it drops or the API restarts."""
    last_id: str | None = None
    printed = 0
    while True:
        try:
            for ev in client.events(last_id, types, group):
                if ev.get("seq") is not None:
                    last_id = str(ev["seq"])
                if not show(str(ev.get("type"))):
                    continue
                _emit(ev, as_json, several)
                printed += 1
                if max_events is not None and printed >= max_events:
                    return
        except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # a silent or broken stream: reconnect below
        except ApiError as exc:
            if exc.exit_code != 3:
                raise
            # The API was there and went away (a restart): keep following; Last-Event-ID then
            # brings what happened meanwhile.
        if not as_json:
            typer.echo("(event stream ended; reconnecting)", err=True)
        time.sleep(1.0)


def register(app: typer.Typer) -> None:
    for fn in (status, instances, scale, pause, resume, logs):
        app.command(epilog=GROUPS_HELP)(fn)
