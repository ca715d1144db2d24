"""The backend's fib worker pool, and how its size follows the CPUs the instance has.

Why a pool whose size changes: vmscale grows an instance in place (a vCPU hot-added to a VM, a
larger cgroup quota for a process). Extra CPUs help only if the backend runs more fib workers on
them, and a shrunk instance must not keep more workers than CPUs (they would just time-slice and
every request would get slower).

``ElasticPool`` is one process pool with more worker processes than may run at once: a semaphore
shared with the workers (inherited when they are forked) lets ``size`` of them run a request at a
time. Every worker takes requests from the pool's one queue and waits for a permit, so the queue
stays shared (an idle worker never waits while another has a backlog) and no request waits for the
parent process between two others (a dispatcher thread per worker did that, and served ~24% fewer
40 ms requests on a busy host). Which waiting worker gets a freed permit is the kernel's choice
(futex wake order: first come first served among equal-priority waiters). Growing releases
permits, at once; shrinking takes them back (each as soon as a running request ends). The
processes beyond ``size`` are *spares*: in a VM with room to grow the backend forks one per vCPU it
may still get (at most ``MAX_SPARES``) at start, so a hot-added vCPU gets a worker without a fork
(measured: forking and warming a pool of two took 0.27 s in a TCG guest). Growing past the forked
processes builds a new, larger pool (the old one finishes what it holds).

Where the size comes from (``WorkerTarget``):

* ``auto`` (inside a VM): the CPUs this process may use (``fib.usable_cpus``: online CPUs in its
  affinity mask, capped by a cgroup quota). The guest onlines a hot-added vCPU by itself and
  signals the backend (SIGHUP); a check every ``FOLLOW_INTERVAL_S`` is the safety net.
* a fixed count plus a *workers file* (the process provider): a process cannot be told its new
  quota through /proc when vmscale limits it by worker count alone (no usable cgroup), so the
  provider writes the count to a file and sends SIGHUP. A file rather than an HTTP endpoint: the
  backend's port is the public one (behind the balancer), the file is only writable by whoever
  runs the instances, and it keeps the size across a restart of the backend.

Only the standard library is imported: this module also runs inside the Debian 12 guest.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmscale.workload.fib import fib, usable_cpus

WORKER_NICE = 10
FOLLOW_INTERVAL_S = 1.0
MAX_WORKERS = 256
MAX_SPARES = 4  # forked-ahead workers kept for vCPUs an instance may still get
log = logging.getLogger("vmscale.backend")


_worker = threading.local()  # in a worker: the pool's permits (a semaphore), set by _worker_init


def _worker_init(gate: Any = None) -> None:
    """Pool workers ignore Ctrl-C and SIGHUP (the parent handles both) and die with the parent.

    They also run at a lower priority than the server process, so that ``/healthz`` answers
    promptly however saturated the workers are: an overloaded instance is slow, not dead, and
    must not be replaced by the autoscaler for failing its health checks. ``gate`` is the pool's
    semaphore: a worker holds a permit while it runs a request (``_gated``).
    """
    _worker.gate = gate
    if threading.current_thread() is threading.main_thread():  # a process worker (tests use threads)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICE)
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _gated(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in a worker while holding one of the pool's permits."""
    gate = getattr(_worker, "gate", None)
    if gate is None:
        return fn(*args)
    with gate:
        return fn(*args)


def make_pool(workers: int, *, warm: bool = True, gate: Any = None) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` processes, started now (warm) so the first requests do not pay for it."""
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, initializer=_worker_init, initargs=(gate,)
    )
    if warm:
        # One small task per worker, submitted together (not gated), makes every process start.
        for future in [pool.submit(fib, 15) for _ in range(workers)]:
            future.result(timeout=60)
    return pool


def spare_cpus(possible: Path = Path("/sys/devices/system/cpu/possible")) -> int:
    """CPUs this machine may still get (possible minus usable): ``0-3`` with 1 usable -> 3."""
    try:
        text = possible.read_text().strip()
    except OSError:
        return 0
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        with contextlib.suppress(ValueError):
            total += int(hi or lo) - int(lo) + 1
    return max(0, total - usable_cpus())


PoolFactory = Callable[[int, Any], concurrent.futures.Executor]  # (processes, gate) -> executor


def _process_pool(processes: int, gate: Any) -> concurrent.futures.Executor:
    return make_pool(processes, gate=gate)


class ElasticPool(concurrent.futures.Executor):
    """A worker pool whose size changes at once within its forked processes (see the module doc)."""

    def __init__(
        self,
        workers: int,
        *,
        spares: int = 0,
        factory: PoolFactory = _process_pool,
        semaphore: Callable[[int], Any] = multiprocessing.Semaphore,
    ) -> None:
        self._factory = factory
        self._semaphore = semaphore
        self._lock = threading.Lock()
        self._resize_lock = threading.Lock()  # one resize at a time; submit never waits for one
        self._active = max(1, min(MAX_WORKERS, workers))
        self._processes = self._active + max(0, min(MAX_SPARES, spares))
        self._gate = semaphore(self._active)
        self._pool = factory(self._processes, self._gate)

    @property
    def size(self) -> int:
        return self._active

    @property
    def processes(self) -> int:
        """Worker processes forked (the active ones and the spares)."""
        return self._processes

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if kwargs:
            raise TypeError("ElasticPool.submit takes positional arguments only")
        with self._lock:
            return self._pool.submit(_gated, fn, *args)

    def resize(self, workers: int) -> bool:
        """Serve with ``workers`` at once from now on; True when the count changed.

        Within the forked processes this only moves permits: more at once; fewer as running
        requests end. Beyond them a new pool is forked and warmed first, then takes the new
        requests while the old one finishes what it holds.
        """
        workers = max(1, min(MAX_WORKERS, workers))
        with self._resize_lock:
            before = self._active
            if workers == before:
                return False
            started = time.monotonic()
            if workers <= self._processes:
                for _ in range(workers - before):
                    self._gate.release()
                for _ in range(before - workers):
                    self._gate.acquire()  # waits for one running request to end
                self._active = workers
            else:
                gate = self._semaphore(workers)
                fresh = self._factory(workers, gate)
                with self._lock:
                    old, self._pool, self._gate = self._pool, fresh, gate
                    self._active = self._processes = workers
                old.shutdown(wait=False)
            log.info("fib workers %d -> %d in %.3f s (%d processes)", before, workers,
                     time.monotonic() - started, self._processes)  # fmt: skip
            return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class WorkerTarget:
    """How many fib workers the backend should run, and how many CPUs it reports having.

    ``fixed=None`` is ``auto``: follow the usable CPUs. Otherwise ``fixed`` is the count, replaced
    by the number in ``workers_file`` when that file holds a valid one.
    """

    def __init__(
        self,
        fixed: int | None = None,
        workers_file: Path | None = None,
        cpus: Callable[[], int] = usable_cpus,
    ) -> None:
        self.fixed = fixed
        self.workers_file = workers_file
        self._cpus = cpus

    @property
    def follows_cpus(self) -> bool:
        return self.fixed is None

    def _from_file(self) -> int | None:
        if self.workers_file is None:
            return None
        try:
            value = int(self.workers_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return value if 1 <= value <= MAX_WORKERS else None

    def read(self) -> tuple[int, int]:
        """(workers wanted, CPUs this instance has) right now."""
        cpus = self._cpus()
        if self.fixed is None:
            return cpus, cpus
        wanted = self._from_file() or self.fixed
        return wanted, min(cpus, wanted)


class Follower:
    """Keeps an ``ElasticPool`` at the ``WorkerTarget``: on SIGHUP at once, else every interval.

    A thread, not an asyncio task: it works the same under the guest's uvicorn 0.17 and the host's
    current one, and a resize (which forks and warms processes) never blocks the event loop.
    """

    def __init__(self, pool: ElasticPool, target: WorkerTarget, interval_s: float = FOLLOW_INTERVAL_S):
        self.pool = pool
        self.target = target
        self.interval_s = interval_s
        self.cpus = target.read()[1]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-follower", daemon=True)

    def start(self) -> Follower:
        """Bring the pool to the target now, then keep it there from a thread."""
        self.check()
        self._thread.start()
        return self

    def poke(self, *_: object) -> None:
        """Check now (the SIGHUP handler; safe to call from a signal handler)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        wanted, cpus = self.target.read()
        self.pool.resize(wanted)
        self.cpus = cpus

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception:  # a failed resize keeps the old pool; try again next time
                log.exception("could not resize the fib worker pool")
