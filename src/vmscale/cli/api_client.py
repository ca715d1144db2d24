"""The operator commands' client for the control API: one httpx client with a timeout on every
call, the token from ``--token-file`` or ``$VMSCALE_TOKEN``, and the event stream (SSE) parser.

Refusals become ``ApiError`` carrying the exit code documented in ``vmscale --help``: 3 when the
API cannot be reached, 2 when it rejected what the user typed (HTTP 400/404/409/422), 1 otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer

# bad value or no group named among several, no such group or host, outside [min, max], invalid
USER_INPUT_STATUSES = {400, 404, 409, 422}
SSE_READ_TIMEOUT_S = 35.0  # the server sends a keep-alive comment every ~10 s


class ApiError(Exception):
    """A refusal from the API, or no API at all; carries the exit code to end with, and, when a
    standby refused a write, the leader's address (``leader``) to send it to instead."""

    def __init__(self, message: str, exit_code: int, status: int | None = None, *, leader: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status  # the HTTP status of a refusal (None: no answer at all)
        self.leader = leader


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
        leader = body.get("leader") if isinstance(body, dict) else None
        if isinstance(body, dict) and "leader" in body:  # a standby's refusal: nothing the user typed
            address = str(leader.get("address") or "") if isinstance(leader, dict) else ""
            refused = f"the control API refused (HTTP {resp.status_code}): {what}"
            return ApiError(refused, 1, resp.status_code, leader=address)
        code = 2 if resp.status_code in USER_INPUT_STATUSES else 1
        return ApiError(
            f"the control API refused (HTTP {resp.status_code}): {what}{hint}", code, resp.status_code
        )

    def events(
        self, last_id: str | None = None, types: str | None = None, group: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """One connection to the SSE stream (of ``group``, or of every group), yielding Event dicts
        until the server closes it."""
        headers = {"Accept": "text/event-stream"}
        params = {"types": types} if types else {}
        if group:
            params["group"] = group
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
