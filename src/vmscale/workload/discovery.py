"""Where the load client sends requests: a small ``EndpointSource`` interface and two sources.

* ``StaticEndpoints(urls)`` — a fixed list (``--url``), as the original client had.
* ``EventStreamEndpoints(api_url, token)`` — follows the control API's Server-Sent Events stream
  ``GET {api}/v1/events``. The first message on connect is an ``endpoints`` event with the full
  list of ready endpoints and every later ``endpoints`` event replaces it, so the client sends to
  new instances as soon as they are ready and stops sending to drained ones. A dropped stream is
  reconnected with exponential back-off; the last known list is kept meanwhile.

The load runner only calls ``endpoints()`` (cheap, synchronous) per request, so anything that can
produce a list (a file, DNS, a test double) plugs in by implementing the three methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from vmscale.errors import VmscaleError

log = logging.getLogger(__name__)


class DiscoveryError(VmscaleError):
    """The endpoint source could not produce a first list (control API unreachable or refusing)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str


class EndpointSource(Protocol):
    def endpoints(self) -> list[Endpoint]:
        """The current endpoints (may be empty while nothing is ready)."""
        ...

    async def start(self) -> None:
        """Begin discovery; idempotent. Raises ``DiscoveryError`` if no first list can be had."""
        ...

    async def stop(self) -> None:
        """Release connections and tasks; idempotent."""
        ...


class StaticEndpoints:
    """A fixed list of base URLs (``http://127.0.0.1:8000``); each endpoint is named by its URL."""

    def __init__(self, urls: list[str]) -> None:
        self._endpoints = [Endpoint(name=u.rstrip("/"), url=u.rstrip("/")) for u in urls]

    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def parse_sse(lines: list[str]) -> tuple[str, str] | None:
    """One SSE message (its lines, without the blank terminator) -> (event type, data), or None
    for a comment-only message such as the ``: ping`` keep-alive."""
    event, data, seen = "message", [], False
    for line in lines:
        if not line or line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            event, seen = value, True
        elif key == "data":
            data.append(value)
            seen = True
    return (event, "\n".join(data)) if seen else None


def endpoints_from_event(data: str) -> list[Endpoint]:
    """The endpoint list of an ``endpoints`` event (``Event.to_dict()`` JSON, or its bare data)."""
    payload: Any = json.loads(data)
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        payload = payload["data"]
    items = payload.get("endpoints", []) if isinstance(payload, dict) else []
    return [Endpoint(name=str(i.get("name") or i["url"]), url=str(i["url"]).rstrip("/")) for i in items]


class EventStreamEndpoints:
    """Endpoints followed from the control API's SSE stream (see module docstring)."""

    def __init__(
        self,
        api_url: str,
        token: str | None = None,
        *,
        first_list_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._first_timeout = first_list_timeout_s
        self._read_timeout = read_timeout_s  # the server pings every ~10 s; silence beyond this = dead
        self._max_backoff = max_backoff_s
        self._endpoints: list[Endpoint] = []
        self._got_list = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self.last_error: str | None = None
        self.reconnects = 0

    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints)

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._follow(), name="vmscale-endpoint-discovery")
        try:
            await asyncio.wait_for(self._got_list.wait(), timeout=self._first_timeout)
        except TimeoutError:
            await self.stop()
            raise DiscoveryError(
                f"no endpoint list from {self.api_url}/v1/events within {self._first_timeout:.0f} s"
                + (f" (last error: {self.last_error})" if self.last_error else "")
            ) from None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        timeout = httpx.Timeout(5.0, read=self._read_timeout)
        backoff = 0.5
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            while True:
                self._connected = False
                try:
                    await self._read_stream(client)
                    self.last_error = "stream ended"
                except httpx.HTTPStatusError as exc:
                    self.last_error = f"HTTP {exc.response.status_code} from {exc.request.url}"
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                if self._connected:
                    backoff = 0.5  # it had been up: reconnect promptly, back off only if that fails
                log.info("endpoint stream lost (%s); reconnecting in %.1f s", self.last_error, backoff)
                self.reconnects += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _read_stream(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"{self.api_url}/v1/events") as response:
            response.raise_for_status()
            self._connected = True
            pending: list[str] = []
            async for line in response.aiter_lines():
                if line:
                    pending.append(line)
                    continue
                message, pending = parse_sse(pending), []
                if message and message[0] == "endpoints":
                    self._endpoints = endpoints_from_event(message[1])
                    self._got_list.set()
