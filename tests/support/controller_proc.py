"""A real `vmscale up` process under test: started, killed, frozen, restarted and asked over its API.

The fault-injection suites (processes, libvirt guests, two controllers sharing a store) all drive the
controller this way, from outside, the way an operator's kill -9 or a crashed host would.

``hostname`` runs the process in a UTS namespace of its own with that host name (``unshare --uts``,
root only): two controllers on this machine then look like two machines to each other, so a standby
cannot see that the leader's process died and must wait for its lease to expire, as across hosts.
``env`` adds environment variables (e.g. ``VMSCALE_API__BIND`` to give each its own API port).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.support.wait import wait_until


class ControllerProcess:
    def __init__(
        self,
        config: Path,
        api: str,
        log_path: Path,
        *,
        cwd: Path | None = None,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
        hostname: str = "",
        group: str = "",
    ) -> None:
        """``prefix`` runs the controller inside something, e.g. ``ip netns exec NS``; ``hostname``
        gives it a host name of its own (a UTS namespace); ``group`` is the group its reads look at
        when the config has several (``/v1/groups/NAME``)."""
        self.config = config
        self.api = api
        self.log_path = log_path
        self.cwd = cwd
        self.prefix = list(prefix)
        self.env = env or {}
        self.hostname = hostname
        self.group_path = f"/v1/groups/{group}" if group else "/v1/group"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *extra: str) -> float:
        """Start `vmscale up -c CONFIG`; returns the monotonic start time."""
        argv = [sys.executable, "-m", "vmscale", "up", "-c", str(self.config), *extra]
        if self.hostname:  # unshare execs sh, which execs vmscale: the pid we hold is vmscale's
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *argv]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, *argv], stdout=log, stderr=log, cwd=self.cwd, env={**os.environ, **self.env}
            )
        return time.monotonic()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9, and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM (a clean stop), then SIGKILL if it does not end in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def wait_api(self, deadline_s: float = 60) -> None:
        """Until the API answers (it does only after restart reconciliation has finished)."""

        def up() -> bool:
            assert self.running, (
                f"`vmscale up` exited ({self.proc and self.proc.returncode}); see {self.log_path}"
            )
            return httpx.get(self.api + "/healthz", timeout=1).status_code == 200

        wait_until(up, "the control API answering", deadline_s)

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        httpx.post(self.api + path, json=body, timeout=5).raise_for_status()

    def get(self, path: str) -> Any:
        return httpx.get(self.api + path, timeout=5).json()

    def group(self) -> dict[str, Any]:
        return dict(self.get(self.group_path))

    def settled(self, desired: int) -> bool:
        """Its group at ``desired`` as it reports it: that many ready, and nothing in any other state."""
        g = self.group()
        return bool(g["desired"] == g["ready"] == g["actual"] == desired and set(g["states"]) <= {"ready"})

    def leadership(self) -> dict[str, Any]:
        """Who leads, as this controller says (``GroupStatus.leadership``)."""
        return dict(self.group()["leadership"])

    def acting(self) -> dict[str, Any] | None:
        """Its leadership once it leads and its first tick as leader has passed, else None."""
        try:
            who = self.leadership()
        except (httpx.HTTPError, ValueError):
            return None
        return who if who["role"] == "leader" and who["first_tick_at"] is not None else None
