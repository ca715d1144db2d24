"""Assemble the control API and run it next to the controller.

``create_app`` wires routes, auth, limits, error handlers and the SSE hub around a
``ControlPlane``; ``serve_in_thread`` runs uvicorn in a background thread (the controller has
its own), and stops it promptly even while dashboards hold event streams open.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vmscale.api import dashboard, hosts, routes
from vmscale.api.auth import TokenStore, check_bind_allowed
from vmscale.api.jsonsafe import SafeJSONResponse
from vmscale.api.limits import LimitsMiddleware, RateLimiter
from vmscale.api.sse import EventHub
from vmscale.config.schema import ApiConfig
from vmscale.control import ControlGroups, ControlPlane
from vmscale.errors import NotLeaderError, StoreError
from vmscale.metrics import ControllerMetrics, MetricFamilies

log = logging.getLogger(__name__)


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> SafeJSONResponse:
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "error"
    return SafeJSONResponse({"error": phrase, "detail": detail}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> SafeJSONResponse:
        return _error(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(NotLeaderError)
    async def not_leader(_: Request, exc: NotLeaderError) -> SafeJSONResponse:
        """A write reached a standby: 409, naming the leader so that a client can go there."""
        leader = {"id": exc.leader_id, "address": exc.leader_address} if exc.leader_id else None
        return SafeJSONResponse({"error": "conflict", "detail": str(exc), "leader": leader}, status_code=409)

    @app.exception_handler(StoreError)
    async def store_down(_: Request, exc: StoreError) -> SafeJSONResponse:
        """A standby reads the store: while it cannot, say so (503, retry) instead of a bare 500."""
        return _error(503, f"the state store is unavailable: {exc}", {"Retry-After": "2"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> SafeJSONResponse:
        problems = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return _error(422, jsonable_encoder(problems))


def create_app(
    control: ControlPlane | ControlGroups,
    *,
    metrics: MetricFamilies | ControllerMetrics | None,
    api_config: ApiConfig,
    tokens: TokenStore,
    sse_ping_s: float = 10.0,
    rate_clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The control API for ``control`` (one group, or every group of a controller). Raises AuthError
    if the bind would be open to the network.

    ``sse_ping_s`` is the keep-alive interval of the event stream; ``rate_clock`` (monotonic
    seconds) drives the rate limiter, injected by tests.
    """
    check_bind_allowed(api_config.bind, tokens)
    app = FastAPI(
        title="vmscale control API",
        version="1",
        description="Observe and steer vmscale groups. Read scope for GET, write scope for POST. "
        "Every group is at /v1/groups/{name}/...; the one-group paths (/v1/group, /v1/instances...) "
        "take ?group= when the controller runs several.",
        default_response_class=SafeJSONResponse,
        # /docs is served by the dashboard router from vendored assets (FastAPI's own pages load
        # Swagger UI and ReDoc from a CDN, which a machine without internet cannot reach).
        docs_url=None,
        redoc_url=None,
    )
    groups = ControlGroups.of(control)
    app.state.groups = groups
    app.state.metrics = metrics
    app.state.tokens = tokens
    app.state.sse_ping_s = sse_ping_s
    hub = EventHub()
    app.state.hub = hub
    groups.events.add_listener(hub.on_event)
    limiter = RateLimiter(api_config.rate_limit_per_s, clock=rate_clock)
    app.add_middleware(LimitsMiddleware, limiter=limiter, max_body_bytes=api_config.max_body_bytes)
    _install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(hosts.router)
    app.include_router(dashboard.router)
    return app


class ServerHandle:
    """A uvicorn server on a background thread. ``stop()`` is idempotent and bounded in time."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, hub: EventHub | None) -> None:
        self._server = server
        self._thread = thread
        self._hub = hub

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        for s in self._server.servers:
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the server is not listening")

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._hub is not None:
            self._hub.close()
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s)


def serve_in_thread(
    app: FastAPI,
    host: str,
    port: int,
    *,
    start_timeout_s: float = 10.0,
    sock: socket.socket | None = None,
) -> ServerHandle:
    """Start serving ``app`` and return once it accepts connections (or raise with the reason).

    The socket is bound here, in the caller's thread, so "address in use" surfaces as an
    ``OSError`` naming the address instead of a log line from a background thread. A caller that
    reserved the address earlier (``vmscale.preflight.reserve``) passes its bound ``sock``.
    """
    if sock is None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"control API cannot listen on {host}:{port}: {exc.strerror}") from exc
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # an EventSource's ?token= would otherwise land in the log
        timeout_graceful_shutdown=2,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:
            failure.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"vmscale-api-{sock.getsockname()[1]}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if failure or not thread.is_alive():
            raise OSError(
                f"control API failed to start on {host}:{port}: {failure[0] if failure else 'exited'}"
            )
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"control API did not start on {host}:{port} within {start_timeout_s} s")
        time.sleep(0.02)
    return ServerHandle(server, thread, getattr(app.state, "hub", None))
