"""Where slow provider calls run.

Launches and terminations can take seconds to minutes (a VM boot, a graceful shutdown), so the
reconcile loop never waits for them: it submits them here and collects the results on a later
tick. Tests use ``InlineExecutor`` so that a submitted call has finished when ``submit`` returns,
which keeps controller tests deterministic without threads or sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class InlineExecutor(Executor):
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        fut: Future[T] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the future carries it to the collecting tick
            fut.set_exception(exc)
        return fut


def worker_pool(max_workers: int = 16) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vmscale-op")
