"""Two `vmscale up` processes with one config and one store: one leads, the other stands by.

    pair = ControllerPair(config, workdir)
    pair.start()                         # A leads (first tick passed), B stands by (API answering)
    leader, standby = pair.leader(), pair.standby()
    killed, new, took = pair.fail_over(30)  # kill -9 the leader, until the standby leads and ticked
    pair.restart(killed)                    # the killed one comes back as a standby

Each controller gets its own API port (``VMSCALE_API__BIND``) and, with ``machines=True`` (the
default), its own host name (a UTS namespace, see ``controller_proc``): the standby then cannot see
that the leader's process died and waits for the lease to expire, as a controller on another
machine does. Used by the failover tests (processes, libvirt guests) and the takeover benchmark.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from tests.support.controller_proc import ControllerProcess
from tests.support.wait import wait_until
from vmscale.ports import free_port


class ControllerPair:
    def __init__(
        self,
        config: Path,
        workdir: Path,
        *,
        cwd: Path | None = None,
        machines: bool = True,
        env: dict[str, str] | None = None,
        group: str = "",
    ) -> None:
        """``group``: the group the pair's reads look at, for a config with several."""
        tag = uuid.uuid4().hex[:6]
        self.members: dict[str, ControllerProcess] = {}
        for name in ("a", "b"):
            port = free_port()
            self.members[name] = ControllerProcess(
                config,
                f"http://127.0.0.1:{port}",
                workdir / f"controller-{name}.log",
                cwd=cwd,
                env={**(env or {}), "VMSCALE_API__BIND": f"127.0.0.1:{port}"},
                hostname=f"vmscale-{tag}-{name}" if machines else "",
                group=group,
            )

    @property
    def a(self) -> ControllerProcess:
        return self.members["a"]

    @property
    def b(self) -> ControllerProcess:
        return self.members["b"]

    def start(self, timeout_s: float = 60) -> None:
        """A first (it leads), then B (it stands by)."""
        self.a.start()
        self.a.wait_api(timeout_s)
        self.wait_acting(self.a, timeout_s)
        self.b.start()
        self.b.wait_api(timeout_s)
        assert self.b.leadership()["role"] == "standby", self.b.leadership()

    def state(self) -> dict[str, Any]:
        """What each running controller says about leadership (for failure messages)."""
        out: dict[str, Any] = {}
        for name, proc in self.members.items():
            try:
                out[name] = proc.leadership() if proc.running else "not running"
            except Exception as exc:  # a test's diagnostic: whatever went wrong, say it
                out[name] = repr(exc)
        return out

    def wait_acting(self, proc: ControllerProcess, timeout_s: float) -> dict[str, Any]:
        """Until ``proc`` leads and has ticked as leader; returns its leadership."""
        return wait_until(proc.acting, f"{proc.api} leading and ticking", timeout_s, state=self.state)

    def leader(self) -> ControllerProcess:
        acting = [p for p in self.members.values() if p.running and p.acting()]
        assert len(acting) == 1, f"expected one acting leader: {self.state()}"
        return acting[0]

    def standby(self) -> ControllerProcess:
        leader = self.leader()
        return next(p for p in self.members.values() if p is not leader)

    def kill_leader(self) -> tuple[ControllerProcess, float]:
        """kill -9 the leader; returns it and the wall time of the kill."""
        leader = self.leader()
        killed_at = time.time()
        leader.kill()
        return leader, killed_at

    def fail_over(self, timeout_s: float) -> tuple[ControllerProcess, ControllerProcess, float]:
        """kill -9 the leader and wait until the standby leads and has ticked: the killed one, the
        new leader, and the seconds from the kill to the new leader's first tick (the takeover)."""
        standby = self.standby()
        killed, killed_at = self.kill_leader()
        who = self.wait_acting(standby, timeout_s)
        return killed, standby, float(who["first_tick_at"]) - killed_at

    def restart(self, proc: ControllerProcess, timeout_s: float = 60) -> None:
        proc.start()
        proc.wait_api(timeout_s)

    def stop(self) -> None:
        """Stop both with SIGTERM, standbys first: the leader, alone then, removes its instances."""
        for proc in sorted(self.members.values(), key=lambda p: p.running and p.acting() is not None):
            proc.stop(60)
