"""One JSON POST with a timeout, as lifecycle webhooks and decision webhooks both make it, and what
came of it in the words the hooks use: ``Outcome``.

* ``succeeded`` — an HTTP 2xx answer (or, for a command, exit code 0);
* ``rejected``  — any other status (or exit code): the hook said no;
* ``timed_out`` — no answer within the timeout (a command is then killed);
* ``error``     — it could not be asked: connection refused, unreadable token file, a command
  that cannot start.

Each phase of the exchange (connect, send, wait for the answer) is bounded by ``timeout_s``; the
answer's body is not read, only its status.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    status: int | None = None  # the HTTP status, when there was an answer
    detail: str = ""  # words for the event log


def http_client(timeout_s: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A client whose every phase is bounded; ``trust_env=False`` so that a proxy setting in the
    environment never redirects a hook."""
    return httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport, trust_env=False)


def post_json(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    *,
    token_file: str = "",
    timeout_s: float | None = None,
) -> Answer:
    headers = {"User-Agent": "vmscale"}
    if token_file:
        try:
            token = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            return Answer(
                Outcome.ERROR, detail=f"cannot read token_file {token_file!r}: {exc.strerror or exc}"
            )
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(timeout_s) if timeout_s is not None else httpx.USE_CLIENT_DEFAULT
    try:
        with client.stream("POST", url, json=body, headers=headers, timeout=timeout) as resp:
            status = resp.status_code
    except httpx.TimeoutException:
        return Answer(Outcome.TIMED_OUT, detail=f"no answer from {url} in time")
    except httpx.HTTPError as exc:
        return Answer(Outcome.ERROR, detail=f"cannot reach {url}: {type(exc).__name__}: {exc}")
    if 200 <= status < 300:
        return Answer(Outcome.SUCCEEDED, status, f"HTTP {status}")
    return Answer(Outcome.REJECTED, status, f"HTTP {status}")
