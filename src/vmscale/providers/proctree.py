"""Process-table helpers for the ``process`` provider: instance records, liveness, trees, ports.

Kept apart from the provider so its lifecycle logic reads on its own. An instance is identified
by the pid of its leader *and* that pid's create time (from psutil): a pid alone can be reused
by an unrelated program after the instance dies, and such a program must never be adopted,
signalled or reported. Never by its command line: that is the user's, and any program may look
like any other.

Every process of an instance also carries ``VMSCALE_INSTANCE=<group>/<name>`` in its environment
(inherited by whatever it forks), which the record names too. Where ``/proc/PID/environ`` shows
a different marker, the process is not the instance. A process *without* the marker is still
judged by pid and create time alone: programs that set a process title (nginx, PostgreSQL,
Python's setproctitle) may overwrite the memory ``/proc/PID/environ`` reads, and such an instance
must not be declared dead (its cgroup would be emptied). ``marked`` finds an instance's processes
by the marker, for operators and tests that must not trust a record.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

from vmscale.config.command import MARKER_ENV
from vmscale.providers.base import ProviderStatus
from vmscale.providers.cpu import CpuReading, CpuTracker

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
    """The recorded process if that pid still is the same process: the create time matches, and
    the environment marker, where the record has one and the process shows one, is the same."""
    try:
        proc = psutil.Process(int(rec["pid"]))
        if abs(proc.create_time() - float(rec["create_time"])) > CREATE_TIME_TOLERANCE_S:
            return None
    except psutil.Error:
        return None
    expected = rec.get("marker")
    if expected:
        found = marker_of(proc)
        if found is not None and found != expected:
            return None
    return proc


def marker_of(proc: psutil.Process) -> str | None:
    """The process's ``VMSCALE_INSTANCE`` value; None when it has none or it cannot be read."""
    try:
        return proc.environ().get(MARKER_ENV)
    except (psutil.Error, OSError):
        return None


def marked(group: str, name: str | None = None) -> list[psutil.Process]:
    """Live processes whose marker names ``group`` (and ``name``, if given), wherever they are."""
    prefix = f"{group}/{name}" if name else f"{group}/"
    found = []
    for proc in psutil.process_iter():
        value = marker_of(proc)
        if value is not None and (value == prefix if name else value.startswith(prefix)) and alive(proc):
            found.append(proc)
    return found


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


def port_open(host: str, port: int, timeout_s: float = 0.05) -> bool:
    """True when something accepts TCP connections on ``host:port`` (one bounded attempt)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_problem(host: str, port: int, others: Iterable[tuple[str, dict[str, Any]]]) -> str:
    """Why an instance cannot take ``host:port`` ('' when it can): another live instance's record
    names it, or some program holds it."""
    for other, rec in others:
        if int(rec["port"]) == port and leader_of(rec) is not None:
            return (
                f"port {port} is already used by instance {other} (pid {rec['pid']}); "
                "give each instance its own port"
            )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return f"cannot bind {host}:{port}: {exc.strerror}"
            return (
                f"port {port} on {host} is already in use by another program{port_holder(port)}; "
                "stop it or change provider.process.base_port"
            )
    return ""


def signal_and_settle(leader: psutil.Process, sig: int, timeout_s: float) -> bool:
    """Signal the instance's process group (SIGSTOP or SIGCONT) and wait, bounded, until the leader
    shows the new state: signals are delivered asynchronously, and a ``list`` right after ``pause``
    must already report it paused. False when it did not settle in time."""
    signal_group(leader.pid, sig)
    want_paused = sig == signal.SIGSTOP
    deadline = time.monotonic() + timeout_s
    while (status_of(leader) == ProviderStatus.PAUSED) != want_paused:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


class TreeCpuSampler:
    """CPU use of instances' process trees in percent of their vCPUs (``vmscale.providers.cpu``).

    ``find(name)`` returns an instance's live leader and vCPU count (from its record), or None.
    Leaders are cached between calls; ``forget`` drops an instance (gone, or its vCPUs changed),
    and the next call for it only sets a new baseline.
    """

    def __init__(self, find: Callable[[str], tuple[psutil.Process, int] | None]) -> None:
        self._find = find
        self._lock = threading.Lock()
        self._procs: dict[str, tuple[psutil.Process, int]] = {}  # name -> (leader, vcpus)
        self._tracker = CpuTracker()

    def forget(self, name: str) -> None:
        with self._lock:
            self._procs.pop(name, None)
        self._tracker.forget(name)

    def sample(self, names: Sequence[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in names:
            entry = self._leader(name)
            if entry is None:
                continue
            proc, vcpus = entry
            reading = CpuReading(tree_cpu_seconds(proc), time.monotonic(), max(1, vcpus), source=proc.pid)
            percent = self._tracker.update(name, reading)
            if percent is not None:
                out[name] = percent
        return out

    def _leader(self, name: str) -> tuple[psutil.Process, int] | None:
        with self._lock:
            entry = self._procs.get(name)
        if entry is not None and alive(entry[0]):  # is_running() also checks the create time
            return entry
        entry = self._find(name)
        if entry is None:
            self.forget(name)
            return None
        with self._lock:
            self._procs[name] = entry
        return entry
        entry = self._find(name)
        if entry is None:
            self.forget(name)
            return None
        with self._lock:
            self._procs[name] = entry
        return entry
