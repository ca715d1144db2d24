"""Helpers for tests that run a LIVE group: a real ``Service`` (controller, control API) with the
process provider, on free loopback ports, torn down with nothing left behind.

Used by the live dashboard, metrics and CLI tests::

    cfg = live_config(tmp_path)
    with running_service(cfg) as svc:
        svc.controller.set_desired(2, "test")
        wait_until(lambda: svc.controller.group().ready == 2, "two ready instances")

Every wait polls with a deadline (the shared CI machine is noisy: deadlines are generous and no
test asserts on how long something took).
"""

from __future__ import annotations

import socket
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.config.schema import VmscaleConfig
from vmscale.service import Service

READY_TIMEOUT_S = 90.0  # two backends starting on a loaded 2-core machine

# Blocks of ports handed out lately in this test process. A port handed out is free when probed
# but is bound only later (a balancer front, the instances of a group); without this record the
# next call could hand out the same port again (CI once gave a group's instance port to the
# HAProxy front of the same test: "port 29451 is already in use by another program (haproxy)").
# Bounded: a long session would otherwise run out of blocks, and old tests' ports are long closed.
_HANDED_OUT: deque[range] = deque(maxlen=32)


def free_port() -> int:
    """A free loopback port below the ephemeral range (see ``free_base_port``), for a server that
    is started a little later (the API of a `vmscale up` subprocess)."""
    return free_base_port(1) + 1


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """Lowest port the kernel hands out to outgoing connections (those come and go all the time)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base_port(count: int) -> int:
    """A base port whose next ``count`` ports are free (instance N listens on base + N).

    The block lies below the ephemeral range: a port above it may be free now and taken a moment
    later by some client's outgoing connection (which made launches fail with "port in use").
    Starts at a random hundred so tests running side by side rarely probe the same block.
    """
    # ...and off the round hundreds that other port schemes (18100 + N) start from.
    low, high = 20_050, _ephemeral_low() - count - 1
    blocks = list(range(low, high, 100))
    assert blocks, f"no room for instance ports below the ephemeral range ({high + count + 1})"
    k = uuid.uuid4().int % len(blocks)
    for base in blocks[k:] + blocks[:k]:
        ports = range(base, base + count + 1)  # the base too: a block of one hands out base + 1
        taken = any(ports.start < r.stop and r.start < ports.stop for r in _HANDED_OUT)
        if not taken and all(_port_free(base + i) for i in range(1, count + 1)):
            _HANDED_OUT.append(ports)
            return base
    raise RuntimeError("no free block of loopback ports for the instances")


def unique_group() -> str:
    return "lv" + uuid.uuid4().hex[:6]


def live_config_data(
    state_dir: Path, *, group: str | None = None, api_port: int | None = None, max_: int = 3
) -> dict[str, Any]:
    """Config (as TOML-shaped data) of a process group: 1 instance, min 1, max ``max_``, one
    CPU-target policy (which the tests pause, so only they steer the count)."""
    base = free_base_port(max_ + 1)
    while api_port is None or base < api_port <= base + max_ + 1:  # never one of the instances' ports
        api_port = free_port()
    return {
        "group": {"name": group or unique_group(), "min": 1, "max": max_, "initial": 1, "interval_s": 0.5},
        "provider": {
            "kind": "process",
            "process": {"base_port": base, "cpu_limit": "workers"},
        },
        "template": {"vcpus": 1, "memory_mb": 256, "fib_max_n": 30},
        "policies": [{"kind": "target", "name": "cpu-target", "metric": "cpu", "target": 60.0}],
        "health": {"timeout_s": 2.0, "boot_timeout_s": 60.0},
        "drain": {"timeout_s": 5.0, "grace_s": 0.2},
        "launch": {"terminate_timeout_s": 5.0},
        "api": {"bind": f"127.0.0.1:{api_port}"},
        "state": {"dir": str(state_dir)},
    }


def live_config(state_dir: Path, **kw: Any) -> VmscaleConfig:
    return parse_config(live_config_data(state_dir, **kw), "live test config")


def controller_state(svc: Service) -> str:
    """Instances and the latest recorded decisions, for a failure message."""
    rows = [(i.name, i.state, i.endpoint) for i in svc.controller.instances()]
    return f"instances {rows}, decisions {svc.controller.decisions(limit=3)}"


def backend_processes(group: str) -> list[psutil.Process]:
    """Live `vmscale backend` processes of ``group`` (found by their --name GROUP-N argument)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "backend" in cmd and "--name" in cmd:
            name = cmd[cmd.index("--name") + 1] if cmd.index("--name") + 1 < len(cmd) else ""
            if name.startswith(group + "-"):
                found.append(proc)
    return found


def running_backends(group: str) -> dict[str, list[int]]:
    """Running backends of ``group`` by instance name: each one's main process (its pool workers
    share its command line), zombies left out. A list per name, so that a duplicate shows."""
    found: dict[str, list[int]] = {}
    for proc in backend_processes(group):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            parent = proc.parent()
            if parent is not None and "backend" in (parent.cmdline() or []):
                continue  # a pool worker of a backend
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        found.setdefault(cmd[cmd.index("--name") + 1], []).append(proc.pid)
    return found


def kill_backends(group: str) -> None:
    """Last-resort cleanup, so a failing test never leaves orphans on the shared machine."""
    procs = backend_processes(group)
    for proc in procs:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


@contextmanager
def running_service(cfg: VmscaleConfig, *, paused: bool = True) -> Iterator[Service]:
    """A started ``Service`` with its first instance ready; stopped (instances removed) afterwards.

    ``paused`` turns automatic decisions off, so the instance count moves only when the test says.
    """
    svc = Service(cfg)
    try:
        svc.start()
        if paused:
            svc.controller.set_paused(True, "test")
        wait_until(
            lambda: svc.controller.group().ready >= 1,
            "the first instance to be ready",
            READY_TIMEOUT_S,
            state=lambda: controller_state(svc),
        )
        yield svc
    finally:
        stop_and_check(svc)


def stop_and_check(svc: Service) -> None:
    """Stop ``svc`` (removing its instances), then fail if any backend process outlived it.

    ``Service.stop()`` promises to wait for its terminations, so a leftover is a bug, not a race;
    leftovers are killed anyway so a failing test leaves the shared machine clean.
    """
    group = svc.cfg.group.name
    try:
        svc.stop(terminate=True)
    finally:
        leftovers = [p.pid for p in backend_processes(group)]
        kill_backends(group)
    assert not leftovers, f"backend processes of {group} outlived Service.stop(): {leftovers}"


def scale_and_wait(svc: Service, count: int, actor: str = "test") -> None:
    """Set the desired count and wait until exactly ``count`` instances are ready and none is leaving."""
    svc.controller.set_desired(count, actor)

    def settled() -> bool:
        g = svc.controller.group()
        return g.ready == count and g.actual == count and len(svc.controller.instances()) == count

    wait_until(
        settled,
        f"{count} ready instance(s) and no others",
        READY_TIMEOUT_S,
        state=lambda: controller_state(svc),
    )
