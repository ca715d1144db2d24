"""The fib backend: the service vmscale scales.

API (compatible with the original student system, plus health and a clearer path)::

    GET /          {"message": "Hello from NAME"}
    GET /{n}       {"input": n, "result": fib(n), "server": NAME}
    GET /fib/{n}   same as /{n}
    GET /healthz   {"status": "ok", "server": NAME, "inflight": k, "workers": N, "fib_max_n": M}
    errors         4xx {"error": "...", "detail": ...}  (never a 500 for bad input)

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
import contextlib
import ctypes
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vmscale.workload.fib import ABSOLUTE_MAX_N, fib, usable_cpus

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


def create_app(
    name: str,
    executor: concurrent.futures.Executor,
    workers: int,
    fib_max_n: int,
    work: Callable[[int], int] = fib,
) -> FastAPI:
    """Build the app around an executor the caller owns (a process pool in production; tests may pass
    a small pool). ``workers`` is what ``/healthz`` reports: the pool's size. ``work`` is the CPU
    work per request (``fib``; tests may pass a function they can hold, with a thread pool)."""
    app = FastAPI(title=f"vmscale fib backend ({name})", docs_url=None, redoc_url=None)
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
        return {"input": n, "result": result, "server": name}

    @app.get("/")
    async def hello() -> dict[str, Any]:
        return {"message": f"Hello from {name}"}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "server": name,
            "inflight": inflight,
            "workers": workers,
            "fib_max_n": fib_max_n,
        }

    @app.get("/fib/{n}")
    async def fib_path(n: str) -> dict[str, Any]:
        return await compute(n)

    @app.get("/{n}")
    async def fib_root(n: str) -> dict[str, Any]:
        return await compute(n)

    return app


WORKER_NICE = 10
KEEP_ALIVE_S = 75


def _worker_init() -> None:
    """Pool workers ignore Ctrl-C (the parent shuts them down) and die with the parent (no orphans).

    They also run at a lower priority than the server process, so that ``/healthz`` answers
    promptly however saturated the workers are: an overloaded instance is slow, not dead, and
    must not be replaced by the autoscaler for failing its health checks.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _note_signal(signum: int, frame: object) -> None:
    log.info("stopping on signal %d", signum)


def make_pool(workers: int, *, warm: bool = True) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` processes, started now (warm) so the first requests do not pay for it."""
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)
    if warm:
        # One small task per worker, submitted together, makes the pool start every process.
        for future in [pool.submit(fib, 15) for _ in range(workers)]:
            future.result(timeout=60)
    return pool


def validate(port: int, workers: int | None, fib_max_n: int) -> list[str]:
    """Every problem with the parameters at once (empty when they are fine)."""
    problems = []
    if not 0 <= port <= 65535:
        problems.append(f"--port must be in 0..65535, got {port}")
    if workers is not None and not 1 <= workers <= 256:
        problems.append(f"--workers must be in 1..256, got {workers}")
    if not 1 <= fib_max_n <= ABSOLUTE_MAX_N:
        problems.append(f"--fib-max-n must be in 1..{ABSOLUTE_MAX_N}, got {fib_max_n}")
    return problems


def serve(
    host: str, port: int, name: str, workers: int | None = None, fib_max_n: int = DEFAULT_FIB_MAX_N
) -> None:
    """Run the backend until SIGTERM/SIGINT (uvicorn stops gracefully), then shut the pool down."""
    import uvicorn

    problems = validate(port, workers, fib_max_n)
    if problems:
        raise ValueError("; ".join(problems))
    count = workers or usable_cpus()
    pool = make_pool(count)
    try:
        app = create_app(name, pool, count, fib_max_n)
        log.info("backend %s on %s:%d with %d fib worker(s), n <= %d", name, host, port, count, fib_max_n)
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
        pool.shutdown(wait=True, cancel_futures=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m vmscale.workload.backend",
        description="The vmscale fib backend (deliberately exponential recursive Fibonacci).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default="web")
    parser.add_argument("--workers", type=int, default=None, help="fib processes (default: usable CPUs)")
    parser.add_argument("--fib-max-n", type=int, default=DEFAULT_FIB_MAX_N, help="largest n served")
    args = parser.parse_args(argv)
    problems = validate(args.port, args.workers, args.fib_max_n)
    if problems:
        parser.error("; ".join(problems))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(args.host, args.port, args.name, args.workers, args.fib_max_n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
