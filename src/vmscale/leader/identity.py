"""Who a controller is: a holder id unique to this process, and whether another id's process on
this host is gone.

The id is ``HOST/PID/START`` (``START`` is the process's start time, which tells a reused pid
apart). It names the controller in the lease and in the registry.

Knowing that a holder's process is gone lets a controller restarted on the same host (after a
crash or ``kill -9``) take over its predecessor's lease at once instead of waiting for it to
expire. Only ids of THIS host are ever judged gone; a holder on another machine, or an id this
code cannot parse, is presumed alive until its lease expires.
"""

from __future__ import annotations

import os
import socket

import psutil


def _start_tag(pid: int) -> str:
    """The process's start time, or "" when it is not running (a zombie has ended: it only
    waits for its parent to collect its exit status)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return ""
        return f"{proc.create_time():.2f}"
    except psutil.Error:
        return ""


def controller_id(host: str | None = None, pid: int | None = None) -> str:
    """This process's holder id (or another process's, given its pid)."""
    pid = os.getpid() if pid is None else pid
    return f"{host or socket.gethostname()}/{pid}/{_start_tag(pid)}"


def holder_gone(holder: str, *, host: str | None = None) -> bool:
    """True only when ``holder`` names a process of this host that no longer runs."""
    parts = holder.rsplit("/", 2)
    if len(parts) != 3 or parts[0] != (host or socket.gethostname()) or not parts[1].isdigit():
        return False
    pid, started = int(parts[1]), parts[2]
    tag = _start_tag(pid)
    return tag == "" or tag != started
