"""The provider calls in flight: at most one per instance, each with a typed kind and a start time.

Launches, terminations, parks, resumes and resizes take seconds to minutes (a VM boot, a graceful shutdown,
a managed-save restore), so the reconcile loop never waits for one: ``start`` submits the call to an
executor and ``collect`` hands back the finished ones, as frozen ``OpResult`` values, on a later
tick. A finished call wakes the loop (``on_done``) so its result is acted on at once.

The submitted callable is an ``OpCall``, which carries its kind: a test executor can hold back
calls of one kind (a slow resume, a stuck terminate) while letting the others run.

No call starts unless this controller still leads: ``start`` checks the term's fence (``fence.py``)
before it submits, and the ``OpCall`` checks it again in the worker, right before the provider is
called, so a call queued before leadership was lost never reaches the provider. ``check`` and
``confirm`` give the actions the same checks before they record a step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vmscale.controller.fence import Fence, Unfenced


class OpKind(StrEnum):
    LAUNCH = "launch"
    TERMINATE = "terminate"
    PAUSE = "pause"  # park a booted instance in the warm pool
    RESUME = "resume"  # take a parked instance out of the warm pool
    LAUNCH_HOOK = "launch-hook"  # the user's launch hooks, between "healthy" and "in rotation"
    TERMINATE_HOOK = "terminate-hook"  # the user's terminate hooks, out of rotation, before destroy
    MIGRATE = "migrate"  # live migration to another host (drain, consolidation): it keeps serving
    FENCE = "fence"  # removing a second copy of a name from a host that came back (plan/fencing.py)
    HOST_COMMAND = "host-command"  # the command for a host left empty (keyed "host:NAME")
    RESIZE = "resize"  # a ready instance's vCPUs, live (vertical-first); it serves on meanwhile
    PREPARE = "prepare"  # the group's golden snapshot, made ahead (keyed ``PREPARE_KEY``, no instance)


# Calls the host step starts and collects (``hosts_step``); the reconciler hands their results on.
HOST_KINDS = frozenset({OpKind.MIGRATE, OpKind.FENCE, OpKind.HOST_COMMAND})

PREPARE_KEY = "golden:"  # + the group: what the prepare call is tracked under (never an instance name)


@dataclass(frozen=True, slots=True)
class OpCall:
    """A provider call of a known kind, as submitted to the executor."""

    kind: OpKind
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    fence: Fence = field(default_factory=Unfenced)

    def __call__(self) -> Any:
        self.fence.check(self.kind.value)  # in the worker, right before the call
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
    def __init__(
        self, executor: Executor, on_done: Callable[[], None] = lambda: None, *, fence: Fence | None = None
    ) -> None:
        self._executor = executor
        self._on_done = on_done
        self._pending: dict[str, _Pending] = {}
        self.fence: Fence = fence or Unfenced()

    @property
    def epoch(self) -> int:
        """The term this controller acts in: every launch carries it to the provider."""
        return self.fence.epoch

    def check(self, action: str) -> None:
        """``NotLeaderError`` unless this controller leads right now (no I/O)."""
        self.fence.check(action)

    def confirm(self, action: str) -> None:
        """``check``, and ask the store (for a step that no fenced record precedes)."""
        self.fence.confirm(action)

    def busy(self, name: str) -> bool:
        return name in self._pending

    def kind_of(self, name: str) -> OpKind | None:
        p = self._pending.get(name)
        return p.kind if p is not None else None

    def start(self, name: str, kind: OpKind, now: float, fn: Callable[..., Any], *args: Any) -> None:
        """Submit ``fn(*args)`` for instance ``name``. One call per instance: a second is a bug."""
        if name in self._pending:
            raise RuntimeError(f"{name}: a {self._pending[name].kind} call is already in flight")
        self.fence.check(kind.value)
        fut = self._executor.submit(OpCall(kind, fn, args, self.fence))
        self._pending[name] = _Pending(kind, now, fut)
        fut.add_done_callback(lambda _: self._on_done())

    def track(self, name: str, kind: OpKind, now: float, future: Future[Any]) -> None:
        """Follow a call that runs elsewhere (a lifecycle hook on the hooks' own threads) like one
        submitted here: the instance is busy until it finishes, and its result is collected."""
        if name in self._pending:
            raise RuntimeError(f"{name}: a {self._pending[name].kind} call is already in flight")
        self._pending[name] = _Pending(kind, now, future)
        future.add_done_callback(lambda _: self._on_done())

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
