"""Process-table helpers for the ``process`` provider: instance records, liveness, trees, ports.

Kept apart from the provider so its lifecycle logic reads on its own. An instance is identified
by the pid of its leader *and* that pid's create time (from psutil): a pid alone can be reused
by an unrelated program after the instance dies, and such a program must never be adopted,
signalled or reported.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import psutil

from vmscale.providers.base import ProviderStatus

CREATE_TIME_TOLERANCE_S = 0.05
REQUIRED_FIELDS = ("name", "group", "pid", "create_time", "port")


class BadRecordError(Exception):
    """An instance record exists but cannot be used (truncated, edited by hand, wrong types)."""


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, None if there is none; BadRecordError if it is unusable."""
    try:
        rec = json.loads(path.read_text())
        if not isinstance(rec, dict) or any(key not in rec for key in REQUIRED_FIELDS):
            raise BadRecordError(f"{path}: missing one of {', '.join(REQUIRED_FIELDS)}")
        int(rec["pid"]), float(rec["create_time"]), int(rec["port"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise BadRecordError(f"{path}: {exc}") from exc
    return rec


def write_record(path: Path, rec: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): a crash never leaves half a record behind."""
    write_text_atomic(path, json.dumps(rec, indent=1, sort_keys=True))


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small file so a reader sees the old content or the new one, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def leader_of(rec: dict[str, Any]) -> psutil.Process | None:
    """The recorded process if that pid still is the same process (create time matches)."""
    try:
        proc = psutil.Process(int(rec["pid"]))
        if abs(proc.create_time() - float(rec["create_time"])) > CREATE_TIME_TOLERANCE_S:
            return None
        return proc
    except psutil.Error:
        return None


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """The process and all its descendants (the backend and its worker pool)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie holds no port and no CPU; it only waits to be reaped)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tree_cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU of the whole tree, including children it has already reaped."""
    total = 0.0
    for member in tree(proc):
        with contextlib.suppress(psutil.Error):
            t = member.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def signal_group(pgid: int, sig: int) -> None:
    """Signal a process group; a group that no longer exists is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def status_of(proc: psutil.Process) -> ProviderStatus:
    try:
        status = proc.status()
    except psutil.Error:
        return ProviderStatus.STOPPED
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return ProviderStatus.PAUSED
    if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return ProviderStatus.STOPPED
    return ProviderStatus.RUNNING


def listener_of(port: int) -> tuple[int, str] | None:
    """(pid, program name) of the process listening on TCP ``port``, or None when it cannot be told."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return conn.pid, psutil.Process(conn.pid).name()
    except (psutil.Error, OSError):
        pass
    return None


def port_holder(port: int) -> str:
    """' (pid N, name)' of the program listening on ``port``, or '' when it cannot be told."""
    found = listener_of(port)
    return f" (pid {found[0]}, {found[1]})" if found else ""
