"""The fib backend: the service vmscale scales.

API (compatible with the original student system, plus health and a clearer path)::

    GET /          {"message": "Hello from NAME"}
    GET /{n}       {"input": n, "result": fib(n), "server": NAME}
    GET /fib/{n}   same as /{n}
    GET /healthz   {"status": "ok", "server": NAME, "inflight": k, "workers": N, "cpus": C, "fib_max_n": M}
    PUT /_vmscale/identity   {"name", "token", "time"}: only with ``--identity push`` (see identity.py)
    errors         4xx {"error": "...", "detail": ...}  (never a 500 for bad input)

``workers`` is the fib pool's size now and ``cpus`` the CPUs the instance has now: both follow a
resize (a hot-added vCPU, a new cgroup quota; see ``pool.py``), so the controller can read the
capacity an instance really has.

Design: ONE uvicorn process (asyncio) hands each fib to a ``ProcessPoolExecutor`` of N worker
processes. So ``/healthz`` answers at once while fib runs, ``inflight`` is an exact count, a
2-worker instance does twice the work of a 1-worker one, and requests beyond N queue inside the
pool, so latency grows under overload (which is what the autoscaler must see).

This module must also run inside the Debian 12 guest with Debian's python3-fastapi (0.92),
python3-uvicorn (0.17) and pydantic 1.10: it imports only the standard library, fastapi,
starlette and uvicorn, and returns plain dicts. The guest runs
``python3 -m vmscale.workload.backend --host H --port P --name NAME``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vmscale.workload.fib import ABSOLUTE_MAX_N, fib
from vmscale.workload.identity import Identity, IdentityRefused
from vmscale.workload.pool import ElasticPool, Follower, WorkerTarget, spare_cpus

DEFAULT_FIB_MAX_N = 35
_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+")
log = logging.getLogger("vmscale.backend")


class ApiError(Exception):
    """A request cannot be answered (bad n, broken pool): the HTTP status and JSON body to answer."""

    def __init__(self, status: int, error: str, detail: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


def parse_n(raw: str, fib_max_n: int) -> int:
    """Turn a path segment into a usable n, or raise ``ApiError`` saying exactly what is wrong."""
    if _NEGATIVE.fullmatch(raw):
        raise ApiError(422, "n must not be negative", {"input": raw[:100], "min": 0, "max": fib_max_n})
    if not _DIGITS.fullmatch(raw):
        raise ApiError(
            400, "n must be a non-negative integer (digits only)", {"input": raw[:100], "max": fib_max_n}
        )
    n = int(raw) if len(raw) <= 6 else None  # long digit strings: too large anyway, do not convert
    if n is None or n > fib_max_n:
        raise ApiError(
            422,
            f"n={raw[:20]} is above this server's ceiling of {fib_max_n} (fib is exponential: too slow)",
            {"input": n if n is not None else raw[:100], "min": 0, "max": fib_max_n},
        )
    return n


def _error(status: int, error: str, detail: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "detail": detail})


IDENTITY_PATH = "/_vmscale/identity"


def create_app(
    name: str | Identity,
    executor: concurrent.futures.Executor,
    workers: int | Callable[[], tuple[int, int]],
    fib_max_n: int,
    work: Callable[[int], int] = fib,
) -> FastAPI:
    """Build the app around an executor the caller owns (a process pool in production; tests may pass
    a small pool). ``workers`` is what ``/healthz`` reports: the pool's size (and as many CPUs), or a
    function returning (workers, cpus) now. ``work`` is the CPU work per request (``fib``; tests may
    pass a function they can hold, with a thread pool). ``name`` may be an ``Identity`` still waiting
    for its pushed name: until then every request but the push is answered 503."""
    identity = name if isinstance(name, Identity) else Identity(name)
    capacity = workers if callable(workers) else (lambda: (workers, workers))
    app = FastAPI(title=f"vmscale fib backend ({identity.name or 'unnamed'})", docs_url=None, redoc_url=None)
    # No 307 to the path without its trailing slash: GET /fib/%2F (n = "/") must be a JSON 4xx like
    # any other bad n, not an empty redirect (a hypothesis case). Set on the router, which has the
    # flag in every FastAPI the guest image may carry.
    app.router.redirect_slashes = False
    inflight = 0

    @app.middleware("http")
    async def _reject_control_characters(request: Request, call_next: Callable[..., Any]) -> Any:
        # Starlette's route patterns end in `$`, which also matches before a trailing newline:
        # without this, GET /%0A would be routed to "/" and answered 200. (scope["path"], because
        # request.url drops newlines and tabs, as urllib.parse does.)
        if any(ord(c) < 32 or ord(c) == 127 for c in request.scope["path"]):
            return _error(400, "invalid path", {"reason": "control characters are not allowed in the path"})
        if identity.name is None and request.scope["path"] != IDENTITY_PATH:
            # A snapshot clone before the provider told it its name: never answer as someone else.
            detail = {"status": "unassigned", "waiting_for": f"PUT {IDENTITY_PATH}"}
            return _error(503, "this instance has no name yet (a snapshot clone being started)", detail)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def _input_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.error, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return _error(422, "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "no such path", 405: "method not allowed"}
        error = messages.get(exc.status_code, str(exc.detail))
        detail = {"path": request.url.path[:200], "try": ["/", "/{n}", "/fib/{n}", "/healthz"]}
        return _error(exc.status_code, error, detail)

    async def compute(raw: str) -> dict[str, Any]:
        nonlocal inflight
        n = parse_n(raw, fib_max_n)
        inflight += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, work, n)
        except concurrent.futures.BrokenExecutor as exc:
            raise ApiError(503, "the fib worker pool is broken; restart this backend", str(exc)) from exc
        finally:
            inflight -= 1
        return {"input": n, "result": result, "server": identity.name}

    @app.get("/")
    async def hello() -> dict[str, Any]:
        return {"message": f"Hello from {identity.name}"}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        pool_size, cpus = capacity()
        return {
            "status": "ok",
            "server": identity.name,
            "inflight": inflight,
            "workers": pool_size,
            "cpus": cpus,
            "fib_max_n": fib_max_n,
        }

    if identity.pushable:

        @app.put(IDENTITY_PATH)
        async def take_identity(request: Request) -> dict[str, Any]:
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError(400, "the body must be JSON: {name, token, time}", str(exc)[:200]) from exc
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object: {name, token, time}", None)
            try:
                taken = identity.assign(body.get("name"), body.get("token"), body.get("time"))
            except IdentityRefused as exc:
                raise ApiError(exc.status, str(exc), None) from exc
            return {"status": "ok", "server": taken}

    @app.get("/fib/{n}")
    async def fib_path(n: str) -> dict[str, Any]:
        return await compute(n)

    @app.get("/{n}")
    async def fib_root(n: str) -> dict[str, Any]:
        return await compute(n)

    return app


KEEP_ALIVE_S = 75


def _note_signal(signum: int, frame: object) -> None:
    log.info("stopping on signal %d", signum)


def validate(port: int, workers: int | None, fib_max_n: int) -> list[str]:
    """Every problem with the parameters at once (empty when they are fine). ``workers=None`` = auto."""
    problems = []
    if not 0 <= port <= 65535:
        problems.append(f"--port must be in 0..65535, got {port}")
    if workers is not None and not 1 <= workers <= 256:
        problems.append(f"--workers must be in 1..256 or 'auto', got {workers}")
    if not 1 <= fib_max_n <= ABSOLUTE_MAX_N:
        problems.append(f"--fib-max-n must be in 1..{ABSOLUTE_MAX_N}, got {fib_max_n}")
    return problems


def serve(
    host: str,
    port: int,
    name: str,
    workers: int | None = None,
    fib_max_n: int = DEFAULT_FIB_MAX_N,
    *,
    workers_file: Path | None = None,
    identity: Identity | None = None,
    pid_file: Path | None = None,
) -> None:
    """Run the backend until SIGTERM/SIGINT (uvicorn stops gracefully), then shut the pool down.

    ``workers=None`` follows the CPUs the process may use; a count may be changed later through
    ``workers_file`` (re-read on SIGHUP). ``identity`` replaces ``name`` for a snapshot clone."""
    import uvicorn

    problems = validate(port, workers, fib_max_n)
    if problems:
        raise ValueError("; ".join(problems))
    target = WorkerTarget(workers, workers_file)
    # Following the CPUs (a VM with room to grow): fork the workers for vCPUs it may still get now.
    pool = ElasticPool(target.read()[0], spares=spare_cpus() if workers is None else 0)
    follower = Follower(pool, target).start()
    # SIGHUP: "your CPUs (or your workers file) changed, look now" (the guest's CPU hotplug hook,
    # the process provider's resize). Sent to this process only; the pool workers ignore it.
    signal.signal(signal.SIGHUP, follower.poke)
    if pid_file is not None:  # written only now: a SIGHUP before the handler would kill the backend
        pid_file.write_text(f"{os.getpid()}\n")
    try:
        app = create_app(identity or name, pool, lambda: (pool.size, follower.cpus), fib_max_n)
        shown = name if identity is None else "(name pushed after restore)"
        mode = "following the CPUs" if workers is None else f"fixed, file {workers_file or 'none'}"
        log.info(
            "backend %s on %s:%d with %d fib worker(s) (%s), n <= %d",
            shown,
            host,
            port,
            pool.size,
            mode,
            fib_max_n,
        )
        # Recent uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, with the handlers that
        # were in place before it ran; these note the signal instead of dying, so the pool below is
        # shut down and the exit status is 0.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _note_signal)
        # A long keep-alive: uvicorn 0.17 (the guest's, from Debian 12) can cut off a request that
        # takes longer than the keep-alive timeout on a reused connection; an overloaded instance
        # queues requests that long (upstream uvicorn issue #1637).
        uvicorn.run(
            app, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE_S
        )
    finally:
        follower.stop()
        pool.shutdown(wait=True, cancel_futures=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m vmscale.workload.backend",
        description="The vmscale fib backend (deliberately exponential recursive Fibonacci).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default="web")
    parser.add_argument(
        "--workers", type=_workers_arg, default=None, help="fib processes, or 'auto' (default): usable CPUs"
    )
    parser.add_argument("--workers-file", type=Path, default=None, help="re-read on SIGHUP for a new count")
    parser.add_argument("--fib-max-n", type=int, default=DEFAULT_FIB_MAX_N, help="largest n served")
    parser.add_argument(
        "--identity",
        choices=("fixed", "push"),
        default="fixed",
        help="push: start without a name and wait for PUT /_vmscale/identity (snapshot clones)",
    )
    parser.add_argument("--identity-token", default="", help="the token a push must carry")
    parser.add_argument("--set-system", action="store_true", help="a pushed identity sets hostname and clock")
    parser.add_argument("--pid-file", type=Path, default=None, help="written once SIGHUP is handled")
    args = parser.parse_args(argv)
    problems = validate(args.port, args.workers, args.fib_max_n)
    if args.identity == "push" and len(args.identity_token) < 16:
        problems.append("--identity push needs --identity-token of at least 16 characters")
    if problems:
        parser.error("; ".join(problems))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    identity = Identity(None, args.identity_token, args.set_system) if args.identity == "push" else None
    serve(
        args.host,
        args.port,
        args.name,
        args.workers,
        args.fib_max_n,
        workers_file=args.workers_file,
        identity=identity,
        pid_file=args.pid_file,
    )
    return 0


def _workers_arg(raw: str) -> int | None:
    if raw == "auto":
        return None
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {raw!r}") from None


if __name__ == "__main__":
    sys.exit(main())
