"""Running a hook command: argv (no shell), extra environment, a hard timeout.

The command runs in a session and process group of its own, so that at its timeout the whole
group goes (SIGTERM, then SIGKILL after ``KILL_GRACE_S``), children included: a hook that starts
``sleep 300 &`` and hangs leaves nothing behind; so does one that exits and leaves children in
its group (a hook that must start something lasting hands it to a service manager). Its output
(stdout and stderr together) goes to an unnamed temporary file rather than a pipe, so a
grandchild holding the pipe open can never stall the wait; the last ``OUTPUT_TAIL`` bytes are
kept for the event log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import IO

from vmscale.hooks.http import Answer, Outcome

KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL of a hook that overran its timeout
OUTPUT_TAIL = 400  # bytes of output kept for the event


class RunningCommands:
    """The hook processes alive right now, so that shutting down can stop them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self.closed = False

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            self.closed = True
            procs = list(self._procs)
        for proc in procs:
            kill_group(proc, grace_s=0)


def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    timeout_s: float,
    running: RunningCommands | None = None,
) -> Answer:
    """Run ``argv`` with ``env`` added to the environment; exit 0 = succeeded, else rejected.

    The command inherits the controller's environment except vmscale's own variables (``VMSCALE_*``:
    API tokens, config overrides), which a user's script has no business seeing."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**{k: v for k, v in os.environ.items() if not k.startswith("VMSCALE_")}, **env},
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return Answer(Outcome.ERROR, detail=f"cannot start {argv[0]!r}: {exc.strerror or exc}")
        if running is not None:
            running.add(proc)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc, KILL_GRACE_S)
            return Answer(
                Outcome.TIMED_OUT, detail=f"still running after {timeout_s:g} s: killed{_tail(out)}"
            )
        finally:
            if running is not None:
                running.discard(proc)
        kill_group(proc, grace_s=0)  # children it left running in its group go with it
        if running is not None and running.closed:
            return Answer(Outcome.ERROR, detail="stopped: vmscale is shutting down")
        if code == 0:
            return Answer(Outcome.SUCCEEDED, detail=f"exit code 0{_tail(out)}")
        what = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return Answer(Outcome.REJECTED, detail=f"{what}{_tail(out)}")


def kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group, wait up to ``grace_s`` for the leader, then SIGKILL the group
    (stragglers that ignored SIGTERM or outlived the leader) and reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if proc.poll() is None and grace_s > 0:
            os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _tail(out: IO[bytes]) -> str:
    try:
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - OUTPUT_TAIL))
        text = out.read().decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return ""
    return f"; output: {text!r}" if text else ""
