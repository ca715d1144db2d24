"""The provider calls in flight: at most one per instance, each with a typed kind and a start time.

Launches, terminations, parks and resumes take seconds to minutes (a VM boot, a graceful shutdown,
a managed-save restore), so the reconcile loop never waits for one: ``start`` submits the call to an
executor and ``collect`` hands back the finished ones, as frozen ``OpResult`` values, on a later
tick. A finished call wakes the loop (``on_done``) so its result is acted on at once.

The submitted callable is an ``OpCall``, which carries its kind: a test executor can hold back
calls of one kind (a slow resume, a stuck terminate) while letting the others run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class OpKind(StrEnum):
    LAUNCH = "launch"
    TERMINATE = "terminate"
    PAUSE = "pause"  # park a booted instance in the warm pool
    RESUME = "resume"  # take a parked instance out of the warm pool


@dataclass(frozen=True, slots=True)
class OpCall:
    """A provider call of a known kind, as submitted to the executor."""

    kind: OpKind
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()

    def __call__(self) -> Any:
        return self.fn(*self.args)


@dataclass(frozen=True, slots=True)
class OpResult:
    name: str
    kind: OpKind
    started: float  # monotonic
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: OpKind
    started: float
    future: Future[Any]


class Operations:
    def __init__(self, executor: Executor, on_done: Callable[[], None] = lambda: None) -> None:
        self._executor = executor
        self._on_done = on_done
        self._pending: dict[str, _Pending] = {}

    def busy(self, name: str) -> bool:
        return name in self._pending

    def kind_of(self, name: str) -> OpKind | None:
        p = self._pending.get(name)
        return p.kind if p is not None else None

    def start(self, name: str, kind: OpKind, now: float, fn: Callable[..., Any], *args: Any) -> None:
        """Submit ``fn(*args)`` for instance ``name``. One call per instance: a second is a bug."""
        if name in self._pending:
            raise RuntimeError(f"{name}: a {self._pending[name].kind} call is already in flight")
        fut = self._executor.submit(OpCall(kind, fn, args))
        self._pending[name] = _Pending(kind, now, fut)
        fut.add_done_callback(lambda _: self._on_done())

    def collect(self) -> list[OpResult]:
        """The calls that finished since the last collect, oldest submission first."""
        done = [(n, p) for n, p in self._pending.items() if p.future.done()]
        out = []
        for name, p in done:
            del self._pending[name]
            exc = p.future.exception()
            out.append(OpResult(name, p.kind, p.started, None if exc is not None else p.future.result(), exc))
        return out

    def abandon(self) -> None:
        """Forget every call in flight and cancel the ones not yet started (leadership is gone)."""
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def wait(self, name: str, timeout_s: float) -> OpResult | None:
        """Wait for the call of ``name`` to finish (shutdown only); None if there is none or it hangs."""
        p = self._pending.get(name)
        if p is None:
            return None
        with contextlib.suppress(FutureTimeout, Exception):
            p.future.result(timeout=timeout_s)
        if not p.future.done():
            return None
        del self._pending[name]
        exc = p.future.exception()
        return OpResult(name, p.kind, p.started, None if exc is not None else p.future.result(), exc)
