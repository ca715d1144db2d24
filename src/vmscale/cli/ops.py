"""Operator commands that talk to a running controller's control API:
`status`, `instances`, `scale N`, `pause`, `resume`, `logs [--follow]`.

They share one small HTTP client with timeouts on every call. Failures map onto the exit
codes documented in ``vmscale --help``: 3 when the API cannot be reached, 2 when the API
rejected what the user typed (HTTP 400/409/422), 1 for any other refusal. The token comes from
``VMSCALE_TOKEN`` or ``--token-file``, never from the command line (where `ps` would show it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

DEFAULT_API = "http://127.0.0.1:8900"
USER_INPUT_STATUSES = {400, 409, 422}  # bad value, outside [min, max], failed validation
SSE_READ_TIMEOUT_S = 35.0  # the server sends a keep-alive comment every ~10 s

ApiOpt = Annotated[
    str, typer.Option("--api", envvar="VMSCALE_API", help="control API URL (or set VMSCALE_API)")
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="file holding the API token (a bare token, or 'SCOPE TOKEN' lines); default: $VMSCALE_TOKEN",
        dir_okay=False,
    ),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for each API call")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's raw JSON (for scripts)")]


class ApiError(Exception):
    """A refusal from the API, or no API at all; carries the exit code to end with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def read_token(token_file: Path | None) -> str | None:
    """The token to send: from ``--token-file`` if given, else ``$VMSCALE_TOKEN``, else none.

    The file may hold a bare token or the server's 'SCOPE TOKEN [NAME]' lines; a write token is
    preferred so that the same file works for `scale` and `status`.
    """
    if token_file is None:
        return os.environ.get("VMSCALE_TOKEN", "").strip() or None
    try:
        text = token_file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read the token file {token_file}: {exc.strerror or exc}", 2)
    entries = [
        line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if not entries:
        fail(f"the token file {token_file} holds no token", 2)
    scoped = {e[0].lower(): e[1] for e in entries if len(e) >= 2 and e[0].lower() in ("read", "write")}
    return scoped.get("write") or scoped.get("read") or entries[0][0]


class ApiClient:
    def __init__(self, base_url: str, token: str | None, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        headers = {"Accept": "application/json", "User-Agent": "vmscale-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self._client.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        if resp.status_code >= 400:
            raise self.refused(resp)
        try:
            return resp.json()
        except ValueError:
            raise ApiError(f"{method} {path}: the API answered with something that is not JSON", 1) from None

    def unreachable(self, exc: Exception) -> ApiError:
        return ApiError(
            f"cannot reach the control API at {self.base_url} ({type(exc).__name__}: {exc or 'no detail'}). "
            "Is `vmscale up` running? Set --api or VMSCALE_API to its address.",
            3,
        )

    @staticmethod
    def refused(resp: httpx.Response) -> ApiError:
        try:
            body = resp.json()
        except ValueError:
            body = {"error": resp.text[:200].strip() or resp.reason_phrase}
        if isinstance(body, dict):
            what = str(body.get("error") or resp.reason_phrase)
            detail = body.get("detail")
            if detail not in (None, "", [], {}):
                what += f": {detail if isinstance(detail, str) else json.dumps(detail)}"
        else:
            what = str(body)
        hint = ""
        if resp.status_code in (401, 403):
            hint = " (set VMSCALE_TOKEN or --token-file to a token with the right scope)"
        code = 2 if resp.status_code in USER_INPUT_STATUSES else 1
        return ApiError(f"the control API refused (HTTP {resp.status_code}): {what}{hint}", code)

    def events(self, last_id: str | None = None, types: str | None = None) -> Iterator[dict[str, Any]]:
        """One connection to the SSE stream, yielding Event dicts until the server closes it."""
        headers = {"Accept": "text/event-stream"}
        params = {"types": types} if types else {}
        if last_id:
            headers["Last-Event-ID"] = last_id
        timeout = httpx.Timeout(self.timeout_s, read=SSE_READ_TIMEOUT_S)
        try:
            with self._client.stream(
                "GET", "/v1/events", headers=headers, params=params, timeout=timeout
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise self.refused(resp)
                yield from parse_sse(resp.iter_lines())
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self.unreachable(exc) from None


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Server-Sent Events -> Event dicts. Comment lines (': ping') and unparsable data are skipped."""
    event_type, seq = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except json.JSONDecodeError:
                    payload = None
                if isinstance(payload, dict):
                    payload.setdefault("type", event_type)
                    payload.setdefault("seq", seq)
                    yield payload
            event_type, data, seq = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event_type = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            seq = int(value) if value.isdigit() else value


def listing(body: Any, key: str) -> list[dict[str, Any]]:
    """The rows of a list answer, whether the API wraps them ({"instances": [...]}) or not."""
    rows = body.get(key) if isinstance(body, dict) else body
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _client(api: str, token_file: Path | None, timeout: float) -> ApiClient:
    return ApiClient(api, read_token(token_file), timeout)


def _call(api: str, token_file: Path | None, timeout: float, method: str, path: str, **kw: Any) -> Any:
    client = _client(api, token_file, timeout)
    try:
        return client.request(method, path, **kw)
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    finally:
        client.close()


def _clock(t: Any) -> str:
    if not isinstance(t, int | float):
        return "--:--:--"
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h" if seconds < 172_800 else f"{seconds / 86400:.0f} d"


def _pct(x: Any) -> str:
    return f"{x:.0f}%" if isinstance(x, int | float) else "–"


def decision_line(d: dict[str, Any]) -> str:
    """'scale up 1 -> 2 (target: cpu 92% > 60%)', with who and whether it was carried out; a
    pause/resume record (which has no counts) reads 'automatic scaling paused by NAME'."""
    action = d.get("action")
    if action in ("paused", "resumed") and d.get("direction") in (None, "none"):
        return f"automatic scaling {action} by {d.get('actor') or 'someone'}"
    direction = d.get("direction")
    verb = f"scale {direction}" if direction in ("up", "down") else "hold"
    counts = f"{d.get('current')} -> {d.get('desired')}" if verb != "hold" else f"at {d.get('desired')}"
    policy, reason = d.get("policy"), str(d.get("reason"))
    why = reason if reason.startswith(f"{policy}:") else f"{policy}: {reason}"  # no "manual: manual: ..."
    line = f"{verb} {counts} ({why})"
    actor = d.get("actor")
    if actor and actor not in ("policy", "controller", "autoscaler") and str(actor) not in line:
        line += f" by {actor}"
    if d.get("applied") is False:
        line += " [not applied]"
    return line


def event_line(ev: dict[str, Any]) -> str:
    """One human-readable line per event: time, type, what happened."""
    type_, data = str(ev.get("type")), ev.get("data") or {}
    if type_ == "instance":
        what = f"{data.get('name')} {data.get('from')} -> {data.get('to')}"
        if data.get("reason"):
            what += f" ({data['reason']})"
    elif type_ == "decision":
        what = decision_line(data)
    elif type_ == "endpoints":
        eps = data.get("endpoints") or []
        what = "ready endpoints: " + (", ".join(f"{e.get('name')} {e.get('url')}" for e in eps) or "none")
    elif type_ == "tick":
        cpus = ", ".join(f"{n} {_pct(i.get('cpu'))}" for n, i in (data.get("instances") or {}).items())
        what = f"desired {data.get('desired')}, actual {data.get('actual')}, ready {data.get('ready')}"
        what += f"; cpu {cpus}" if cpus else ""
    elif type_ == "error":
        what = f"{data.get('where')}: {data.get('message')}"
        what += f" ({data['instance']})" if data.get("instance") else ""
    else:
        what = json.dumps(data, sort_keys=True)
    return f"{_clock(ev.get('t'))}  {type_:<9} {what}"


def status(
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Show the group's counts, bounds, provider, balancer and last decision.

    **Examples**

    ```
    vmscale status
    vmscale status --json | jq .desired
    VMSCALE_API=http://127.0.0.1:8901 vmscale status
    ```
    """
    g = _call(api, token_file, timeout, "GET", "/v1/group")
    if as_json:
        typer.echo(json.dumps(g, indent=2))
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
        ("last decision", (f"{_clock(last.get('t'))} " + decision_line(last)) if last else "–"),
    ]:
        table.add_row(key, str(value))
    Console().print(table)


def instances(
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """List the group's instances with their state, endpoint and CPU.

    **Examples**

    ```
    vmscale instances
    vmscale instances --json | jq -r '.instances[] | select(.state=="ready") | .endpoint'
    ```
    """
    body = _call(api, token_file, timeout, "GET", "/v1/instances")
    rows = listing(body, "instances")
    if as_json:  # always {"instances": [...]}, whether the API wraps the list or not
        typer.echo(json.dumps({"instances": rows}, indent=2))
        return
    table = Table(title=f"{len(rows)} instance(s)", title_justify="left")
    for col in ("name", "state", "endpoint", "vCPUs", "CPU", "up for", "details"):
        table.add_column(col, justify="right" if col in ("vCPUs", "CPU", "up for") else "left")
    now = time.time()
    for i in rows:
        launched = i.get("launched_at")
        age = _duration(now - launched) if isinstance(launched, int | float) else "–"
        details = ", ".join(f"{k}={v}" for k, v in (i.get("details") or {}).items())
        table.add_row(
            str(i.get("name")),
            str(i.get("state")),
            str(i.get("endpoint")),
            str(i.get("vcpus")),
            _pct(i.get("cpu")),
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
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Set the desired instance count by hand (recorded with who asked).

    The policies may change it again at their next decision; `vmscale pause` first to hold it.

    **Examples**

    ```
    vmscale scale 3
    VMSCALE_TOKEN=... vmscale scale 1 --api http://10.0.0.5:8900
    ```
    """
    g = _call(api, token_file, timeout, "POST", "/v1/group/desired", json={"desired": count})
    _print_group_change(g, as_json, f"desired count set to {count}")
    if isinstance(g, dict) and not g.get("paused"):
        typer.echo(
            "note: automatic scaling is on, so the policies may change this at their next decision; "
            "run `vmscale pause` to hold it",
            err=True,
        )


def pause(
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Pause automatic scaling decisions.

    Health checks and the replacement of failed instances go on.

    **Examples**

    ```
    vmscale pause && vmscale scale 2     # hold the group at 2
    ```
    """
    g = _call(api, token_file, timeout, "POST", "/v1/group/pause")
    _print_group_change(g, as_json, "automatic scaling paused")


def resume(
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Resume automatic scaling decisions after `vmscale pause`.

    **Examples**

    ```
    vmscale resume
    ```
    """
    g = _call(api, token_file, timeout, "POST", "/v1/group/resume")
    _print_group_change(g, as_json, "automatic scaling resumed")


def _emit(ev: dict[str, Any], as_json: bool) -> None:
    typer.echo(json.dumps(ev) if as_json else event_line(ev))


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
    api: ApiOpt = DEFAULT_API,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON event per line ({seq,t,type,data})")
    ] = False,
) -> None:
    """Show recent scaling decisions, and with --follow every event live.

    Events: instance state changes, decisions, endpoint changes, errors (and ticks on request).

    **Examples**

    ```
    vmscale logs                          # the last 20 decisions with their reasons
    vmscale logs --follow                 # ...then live events until Ctrl-C
    vmscale logs -f --types decision,instance
    vmscale logs -f --json --types tick | jq .data.actual
    ```
    """
    wanted = {t.strip() for t in types.split(",") if t.strip()} if types else None
    show = (lambda t: t in wanted) if wanted else (lambda t: t != "tick")
    client = _client(api, token_file, timeout)
    try:
        if show("decision"):
            body = client.request("GET", "/v1/decisions", params={"limit": limit})
            for d in listing(body, "decisions")[-limit:]:
                ev = (
                    d
                    if "type" in d and "data" in d
                    else {"seq": None, "t": d.get("t"), "type": "decision", "data": d}
                )
                _emit(ev, as_json)
        if follow:
            _follow(client, show, ",".join(sorted(wanted)) if wanted else None, max_events, as_json)
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops following: a normal end
    finally:
        client.close()


def _follow(client: ApiClient, show: Any, types: str | None, max_events: int | None, as_json: bool) -> None:
    """Print the stream; reconnect (resuming after the last event seen) when it drops."""
    last_id: str | None = None
    printed = 0
    while True:
        try:
            for ev in client.events(last_id, types):
                if ev.get("seq") is not None:
                    last_id = str(ev["seq"])
                if not show(str(ev.get("type"))):
                    continue
                _emit(ev, as_json)
                printed += 1
                if max_events is not None and printed >= max_events:
                    return
        except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # a silent or broken stream: reconnect below
        if not as_json:
            typer.echo("(event stream ended; reconnecting)", err=True)
        time.sleep(1.0)


def register(app: typer.Typer) -> None:
    for fn in (status, instances, scale, pause, resume, logs):
        app.command()(fn)
