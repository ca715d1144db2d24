"""The backend's fib worker pool, and how its size follows the CPUs the instance has.

Why a pool whose size changes: vmscale grows an instance in place (a vCPU hot-added to a VM, a
larger cgroup quota for a process). Extra CPUs help only if the backend runs more fib workers on
them, and a shrunk instance must not keep more workers than CPUs (they would just time-slice and
every request would get slower).

``ElasticPool`` is one shared queue served by worker *slots*, each a single-process pool driven by
a dispatcher thread that takes the next request only while its slot is among the ``active`` ones.
So the queue is shared (an idle worker never waits while another one has a backlog), growing is
switching on more slots and shrinking is switching them off (a slot finishes its request first).
Slots that are off stay forked and warm as *spares*: in a VM with room to grow, the backend forks
one spare per vCPU it may still get (at most ``MAX_SPARES``) at start, so a hot-added vCPU gets a
worker at once instead of after a fork under software emulation (measured: forking and warming a
pool of two took 0.27 s in a TCG guest). A worker process that dies is replaced by its slot.

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
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmscale.workload.fib import fib, usable_cpus

WORKER_NICE = 10
FOLLOW_INTERVAL_S = 1.0
MAX_WORKERS = 256
MAX_SPARES = 4  # forked-ahead workers kept for vCPUs an instance may still get
log = logging.getLogger("vmscale.backend")


def _worker_init() -> None:
    """Pool workers ignore Ctrl-C and SIGHUP (the parent handles both) and die with the parent.

    They also run at a lower priority than the server process, so that ``/healthz`` answers
    promptly however saturated the workers are: an overloaded instance is slow, not dead, and
    must not be replaced by the autoscaler for failing its health checks.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def make_pool(workers: int, *, warm: bool = True) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` processes, started now (warm) so the first requests do not pay for it."""
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)
    if warm:
        # One small task per worker, submitted together, makes the pool start every process.
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


Work = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ElasticPool(concurrent.futures.Executor):
    """A shared queue served by ``size`` worker slots; more or fewer at once (see the module doc)."""

    def __init__(
        self,
        workers: int,
        *,
        spares: int = 0,
        factory: Callable[[int], concurrent.futures.Executor] = make_pool,
    ) -> None:
        self._factory = factory
        self._cond = threading.Condition()
        self._queue: deque[Work] = deque()
        self._slots: list[concurrent.futures.Executor] = []
        self._threads: list[threading.Thread] = []
        self._resize_lock = threading.Lock()  # one resize at a time; submit never waits for one
        self._closed = False
        self._active = max(1, min(MAX_WORKERS, workers))
        self._add_slots(self._active + max(0, min(MAX_SPARES, spares)))

    @property
    def size(self) -> int:
        return self._active

    @property
    def slots(self) -> int:
        """Worker processes forked (active + spares)."""
        return len(self._slots)

    def _add_slots(self, total: int) -> None:
        """Fork and warm slots until there are ``total`` (outside the queue lock: it takes time)."""
        fresh = [self._factory(1) for _ in range(total - len(self._slots))]
        with self._cond:
            for executor in fresh:
                index = len(self._slots)
                self._slots.append(executor)
                thread = threading.Thread(
                    target=self._serve, args=(index,), name=f"fib-slot-{index}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._queue.append((future, fn, args, kwargs))
            self._cond.notify_all()
        return future

    def _serve(self, index: int) -> None:
        """A slot's dispatcher: take the next request while this slot is active, run it on its worker."""
        while True:
            with self._cond:
                while not self._closed and not (self._queue and index < self._active):
                    self._cond.wait()
                if self._closed:
                    return
                future, fn, args, kwargs = self._queue.popleft()
                executor = self._slots[index]
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = executor.submit(fn, *args, **kwargs).result()
            except concurrent.futures.BrokenExecutor as exc:
                future.set_exception(exc)
                self._replace(index, executor)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _replace(self, index: int, broken: concurrent.futures.Executor) -> None:
        """A worker process died (killed, out of memory): the slot gets a new one."""
        with contextlib.suppress(Exception):
            broken.shutdown(wait=False)
        try:
            fresh = self._factory(1)
        except Exception:
            log.exception("could not replace fib worker %d", index)
            return
        with self._cond:
            self._slots[index] = fresh
        log.warning("fib worker %d died and was replaced", index)

    def resize(self, workers: int) -> bool:
        """Serve with ``workers`` worker processes from now on; True when the count changed.

        Spares are switched on at once; beyond them new workers are forked and warmed first, so
        a request never waits for a process to start. Switched-off workers finish their request,
        then wait as spares.
        """
        workers = max(1, min(MAX_WORKERS, workers))
        with self._resize_lock:
            before = self._active
            if workers == before:
                return False
            started = time.monotonic()
            if workers > len(self._slots):
                self._add_slots(workers)
            with self._cond:
                self._active = workers
                self._cond.notify_all()
            log.info("fib workers %d -> %d in %.3f s (%d forked)", before, workers,
                     time.monotonic() - started, len(self._slots))  # fmt: skip
            return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; requests still queued are cancelled (a running one finishes if ``wait``)."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for future, *_ in pending:
            future.cancel()
        for executor in list(self._slots):
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)


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
