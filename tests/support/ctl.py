"""Run Python code inside a test topology's ctl namespace, from pytest in the root namespace.

vmscale (the provider, the inventory, HAProxy it starts, health probes) must talk to the namespaced
hosts and their guests from inside the topology, never from the root namespace (the network rule).
``CtlWorker`` is a one-process pool whose process enters the ctl network namespace (``setns``)
before it runs anything, and checks that it did; functions submitted to it (importable, picklable
arguments and results) run there, and objects they keep in module globals (a provider, a balancer)
live on between calls:

    with CtlWorker(topo.ctl_netns) as ctl:
        ctl.run(tasks.open_cluster, config_dict)
        ctl.run(tasks.launch, "web-1", "h1", timeout_s=120)

A child that cannot enter the namespace raises, so nothing can fall back to the root namespace.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def enter_netns(netns: str) -> None:
    """Move this (single-threaded) process into ``/run/netns/NETNS``; raise if it did not work."""
    path = f"/run/netns/{netns}"
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)
    if os.stat("/proc/self/ns/net").st_ino != os.stat(path).st_ino:
        raise RuntimeError(f"this process is not in {netns} after setns")


def netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


class CtlWorker:
    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=enter_netns,
            initargs=(netns,),
        )
        inode = self.run(netns_inode, timeout_s=60)
        if inode != os.stat(f"/run/netns/{netns}").st_ino:
            raise RuntimeError(f"the ctl worker is not in {netns}")

    def run(self, fn: Callable[..., T], *args: Any, timeout_s: float = 60, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the ctl namespace; at most ``timeout_s``."""
        return self._pool.submit(fn, *args, **kwargs).result(timeout=timeout_s)

    def close(self) -> None:
        """Stop the worker; one still busy after 30 s is killed by its pid (it is ours)."""
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(10)

    def __enter__(self) -> CtlWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
