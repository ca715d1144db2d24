"""The load client's engine: ``run_phases`` sends the requests the phases ask for and logs them.

Library API (what ``vmscale load`` and the demo use)::

    phases = [Phase("low", 10), Phase("high", 30, calibrate_s=0.25), Phase("idle", 20)]
    summary = await run_phases(phases, StaticEndpoints(["http://127.0.0.1:8000"]), Path("client.jsonl"))
    print(summary.to_dict()["p95_s"])

* Phases run back to back; each starts with a marker line in the log. Requests still in flight
  when a phase ends finish in the background and are logged under the phase that sent them.
* Open-loop phases (low/step/ramp/trace) send at the planned times whatever the latency. When
  ``max_outstanding`` requests are already in flight, a planned send is not made and is logged as
  an error ``"dropped"`` (so overload shows as errors, never as silently lower load).
* ``high`` sends groups of ``concurrency`` concurrent requests; a group starts when the previous
  one is answered (or the phase ends).
* ``stop`` (an ``asyncio.Event``) ends the run early: the current phase stops sending, the rest are
  skipped, in-flight requests get ``stop_grace_s`` to finish and are then cancelled.
* Each request goes to one endpoint from ``source.endpoints()``: ``random`` as the original
  client, or ``p2c`` (power of two choices: of two random endpoints, the one with fewer requests
  in flight from this client). ``run_phases`` starts and stops the source itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import httpx

from vmscale.workload.discovery import DiscoveryError, Endpoint, EndpointSource
from vmscale.workload.load_plan import (
    DEFAULT_HEAVY_N,
    LOW_N_RANGE,
    OPEN_LOOP,
    LoadParameterError,
    Phase,
    check_phases,
    send_offsets,
)
from vmscale.workload.load_stats import DROPPED, Record, Summary

log = logging.getLogger(__name__)
PHI = (1 + math.sqrt(5)) / 2


@dataclass(frozen=True)
class LoadOptions:
    """How requests are made. ``timeout_s`` bounds every request (connect, read, pool)."""

    pick: str = "random"
    timeout_s: float = 60.0
    max_outstanding: int = 1000
    seed: int | None = None
    stop_grace_s: float = 5.0
    # Reuse connections. Off for backends that may cut a kept-alive connection under a slow request:
    # the guest image's uvicorn (Debian 12's 0.17) closes it when a request outlasts its 5 s
    # keep-alive timer ("Server disconnected without sending a response", uvicorn #1637), which an
    # overloaded TCG guest reaches. A new connection per request costs little next to a fib request.
    keepalive: bool = True

    def problems(self) -> list[str]:
        p = []
        if self.pick not in ("random", "p2c"):
            p.append(f"pick must be random or p2c, got {self.pick!r}")
        if not (math.isfinite(self.timeout_s) and 0 < self.timeout_s <= 3600):
            p.append(f"timeout must be within 0..3600 s, got {self.timeout_s}")
        if not 1 <= self.max_outstanding <= 10000:
            p.append(f"max-outstanding must be within 1..10000, got {self.max_outstanding}")
        return p


class LoadClock(Protocol):
    """Time for the scheduler; tests pass a fake that jumps instead of sleeping."""

    def now(self) -> float: ...
    def monotonic(self) -> float: ...
    async def sleep_until(self, monotonic_t: float, stop: asyncio.Event) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, monotonic_t: float, stop: asyncio.Event) -> None:
        delay = monotonic_t - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        else:
            await asyncio.sleep(0)  # behind schedule: catch up, but let responses be handled too


def pick_endpoint(
    endpoints: list[Endpoint], how: str, outstanding: dict[str, int], rng: random.Random
) -> Endpoint:
    """``random``: uniform choice. ``p2c``: two distinct random candidates, the less busy wins."""
    if how == "p2c" and len(endpoints) > 1:
        a, b = rng.sample(endpoints, 2)
        return a if outstanding[a.url] <= outstanding[b.url] else b
    return rng.choice(endpoints)


class _Run:
    """State of one ``run_phases`` call (client, in-flight tasks, log, summary)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        source: EndpointSource,
        options: LoadOptions,
        clock: LoadClock,
        stop: asyncio.Event,
        log_fh: IO[str] | None,
        on_record: Callable[[Record], None] | None,
    ) -> None:
        self.client, self.source, self.options, self.clock, self.stop = client, source, options, clock, stop
        self.log_fh, self.on_record = log_fh, on_record
        self.rng = random.Random(options.seed)
        self.outstanding: dict[str, int] = defaultdict(int)
        self.tasks: set[asyncio.Task[None]] = set()
        self.summary = Summary()
        self.calibrated: dict[float, int] = {}

    def record(self, r: Record) -> None:
        self.summary.add(r)
        if self.log_fh is not None:
            self.log_fh.write(json.dumps(r.to_dict()) + "\n")
        if self.on_record is not None:
            self.on_record(r)

    def marker(self, phase: Phase) -> None:
        if self.log_fh is not None:
            self.log_fh.write(
                json.dumps({"event": "phase", "phase": phase.label, "t": self.clock.now()}) + "\n"
            )
            self.log_fh.flush()

    def launch(self, n: int, phase: str) -> asyncio.Task[None] | None:
        """Start one request now (never waits for it); None if it could not be sent."""
        endpoints = self.source.endpoints()
        if not endpoints:
            self.record(Record(self.clock.now(), None, None, "no endpoint available", "", None, n, phase))
            return None
        if len(self.tasks) >= self.options.max_outstanding:
            ep = pick_endpoint(endpoints, self.options.pick, self.outstanding, self.rng)
            self.record(Record(self.clock.now(), None, None, DROPPED, ep.url, None, n, phase))
            return None
        ep = pick_endpoint(endpoints, self.options.pick, self.outstanding, self.rng)
        self.outstanding[ep.url] += 1
        # Send time and latency start are taken here, when the schedule says "send", so a busy
        # event loop shows up as latency instead of hiding (no coordinated omission).
        task = asyncio.create_task(self.request(ep, n, phase, self.clock.now(), self.clock.monotonic()))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def request(self, ep: Endpoint, n: int, phase: str, t_send: float, start: float) -> None:
        status: int | None = None
        server: str | None = None
        error: str | None = None
        try:
            resp = await self.client.get(f"{ep.url}/{n}")
            status = resp.status_code
            with contextlib.suppress(ValueError):
                body = resp.json()
                server = body.get("server") if isinstance(body, dict) else None
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.TimeoutException:
            error = f"timeout after {self.options.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        except asyncio.CancelledError:
            error = "cancelled at stop"
        finally:
            self.outstanding[ep.url] -= 1
        latency = self.clock.monotonic() - start if error is None else None
        self.record(Record(t_send, latency, status, error, ep.url, server, n, phase))

    async def open_loop(self, phase: Phase, n_for: Callable[[], int]) -> None:
        start = self.clock.monotonic()
        for offset in send_offsets(phase, self.rng):
            await self.clock.sleep_until(start + offset, self.stop)
            if self.stop.is_set():
                return
            self.launch(n_for(), phase.label)
        await self.clock.sleep_until(start + phase.duration_s, self.stop)

    async def high(self, phase: Phase, n: int, concurrency: int) -> None:
        deadline = self.clock.monotonic() + phase.duration_s
        while not self.stop.is_set() and self.clock.monotonic() < deadline:
            group = [t for t in (self.launch(n, phase.label) for _ in range(concurrency)) if t is not None]
            remaining = deadline - self.clock.monotonic()
            if not group:  # nothing could be sent (no endpoints): do not spin
                await self.clock.sleep_until(self.clock.monotonic() + min(0.5, max(remaining, 0)), self.stop)
                continue
            await self.wait_group(group, deadline)

    async def wait_group(self, group: list[asyncio.Task[None]], deadline: float) -> None:
        """Wait until the whole group is answered, the phase deadline passes or ``stop`` is set."""
        stopper = asyncio.ensure_future(self.stop.wait())
        pending: set[asyncio.Future[Any]] = set(group)
        try:
            while pending and not self.stop.is_set():
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    return
                done, _ = await asyncio.wait(
                    [*pending, stopper], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
        finally:
            stopper.cancel()

    async def healthz(self, url: str) -> dict[str, Any]:
        try:
            resp = await self.client.get(f"{url}/healthz")
            body = resp.json()
            return body if isinstance(body, dict) else {}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot read %s/healthz: %s", url, exc)
            return {}

    async def timed(self, url: str, n: int, tries: int = 3) -> float:
        """Fastest of ``tries`` sequential requests for fib(n), in seconds."""
        best = math.inf
        for _ in range(tries):
            start = time.monotonic()
            resp = await self.client.get(f"{url}/{n}")
            resp.raise_for_status()
            best = min(best, time.monotonic() - start)
        return best

    async def calibrate(self, target_s: float) -> int:
        """n so that fib(n) takes about ``target_s`` on the idle first endpoint (see ``calibrate_n``)."""
        if target_s not in self.calibrated:
            url = (await self.first_endpoint()).url
            max_n = int((await self.healthz(url)).get("fib_max_n", 35))
            self.calibrated[target_s] = await calibrate_n(self.timed, url, target_s, max_n)
            log.info(
                "calibrated n=%d for ~%.2f s per request on %s", self.calibrated[target_s], target_s, url
            )
        return self.calibrated[target_s]

    async def first_endpoint(self, wait_s: float = 30.0) -> Endpoint:
        """The endpoint that sizes ``high`` and calibration; waits a while if none is ready yet."""
        deadline = self.clock.monotonic() + wait_s
        while not (endpoints := self.source.endpoints()):
            if self.clock.monotonic() >= deadline or self.stop.is_set():
                raise DiscoveryError(f"no endpoint ready within {wait_s:.0f} s to size the load on")
            await self.clock.sleep_until(self.clock.monotonic() + 0.2, self.stop)
        return endpoints[0]

    async def heavy_n(self, phase: Phase) -> int | None:
        if phase.n is not None:
            return phase.n
        if phase.calibrate_s is not None:
            return await self.calibrate(phase.calibrate_s)
        return None

    async def run_phase(self, phase: Phase) -> None:
        self.marker(phase)
        if phase.mode == "idle":
            await self.clock.sleep_until(self.clock.monotonic() + phase.duration_s, self.stop)
        elif phase.mode == "high":
            n = await self.heavy_n(phase) or DEFAULT_HEAVY_N
            concurrency = phase.concurrency
            if concurrency is None:
                workers = (await self.healthz((await self.first_endpoint()).url)).get("workers", 1)
                concurrency = 2 * max(1, int(workers))
            await self.high(phase, n, concurrency)
        elif phase.mode in OPEN_LOOP:
            fixed = await self.heavy_n(phase) if phase.mode != "low" else None
            lo, hi = LOW_N_RANGE
            await self.open_loop(
                phase, (lambda: fixed) if fixed is not None else (lambda: self.rng.randint(lo, hi))
            )

    async def finish(self) -> None:
        """Let in-flight requests end (each bounded by the request timeout; on stop, by the grace)."""
        if not self.tasks:
            return
        pending = set(self.tasks)
        if self.stop.is_set():
            _, late = await asyncio.wait(pending, timeout=self.options.stop_grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        else:
            await asyncio.wait(pending)


async def calibrate_n(
    timed: Callable[..., Awaitable[float]], url: str, target_s: float, max_n: int, start_n: int = 20
) -> int:
    """Pick n so that fib(n) takes about ``target_s`` on ``url``.

    fib(n) costs about PHI^n, so one measurement at n gives n* = n + log(target/t) / log(PHI).
    Start at ``start_n``, climb in steps of 4 until the time is well above the request overhead,
    extrapolate, then measure once more at the estimate and refine. Clamped to 1..max_n.
    """
    base = await timed(url, 0)
    n = min(start_n, max_n)
    t = max(await timed(url, n) - base, 1e-6)
    while t < min(target_s / 8, 0.02) and n + 4 <= max_n:
        n += 4
        t = max(await timed(url, n) - base, 1e-6)
    for _ in range(2):
        estimate = max(1, min(max_n, round(n + math.log(target_s / t) / math.log(PHI))))
        if estimate == n:
            break
        n = estimate
        t = max(await timed(url, n, 1) - base, 1e-6)
    return n


async def run_phases(
    phases: Sequence[Phase],
    source: EndpointSource,
    log_path: Path | None,
    stop: asyncio.Event | None = None,
    *,
    options: LoadOptions | None = None,
    clock: LoadClock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> Summary:
    """Run ``phases`` back to back against ``source`` and return the summary (see module docstring).

    Raises ``LoadParameterError`` (before sending anything) for absurd parameters and
    ``DiscoveryError`` when the source yields no first endpoint list (or, for ``high`` and
    calibration, no endpoint at all within 30 s).
    """
    options = options or LoadOptions()
    problems = options.problems()
    try:
        check_phases(phases)
    except LoadParameterError as exc:
        problems = exc.problems + problems
    if problems:
        raise LoadParameterError(problems)
    clock = clock or RealClock()
    stop = stop or asyncio.Event()
    timeout = httpx.Timeout(options.timeout_s)
    limits = httpx.Limits(
        max_connections=options.max_outstanding + 10,
        max_keepalive_connections=100 if options.keepalive else 0,
    )
    log_fh = log_path.open("w", encoding="utf-8") if log_path is not None else None
    try:
        await source.start()
        async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport) as client:
            run = _Run(client, source, options, clock, stop, log_fh, on_record)
            started = clock.monotonic()
            try:
                for phase in phases:
                    if stop.is_set():
                        break
                    await run.run_phase(phase)
            finally:
                await run.finish()
            run.summary.duration_s = clock.monotonic() - started
            return run.summary
    finally:
        await source.stop()
        if log_fh is not None:
            log_fh.close()
