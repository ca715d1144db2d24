"""Helpers for the controller-level e2e tests with real libvirt TCG guests.

Everything here talks to libvirtd through `virsh` (an independent view: a test must not trust the
provider it is checking) and to the guests only through their 127.0.0.1 port forwards.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from tests.e2e.conftest import REPO, URI, free_port

T = TypeVar("T")

# Vertical-first under queued requests: more than 1.5 in flight per vCPU for two samples asks for
# one vCPU more (the policies count vCPUs), then waits for the new vCPU to show before asking again.
QUEUE_POLICY: dict[str, Any] = {
    "kind": "threshold",
    "name": "queue",
    "metric": "inflight",
    "upper": 1.5,
    "samples_up": 2,
    "step": 1,
    "cooldown_up_s": 8.0,
}


def virsh(*args: str, check: bool = True, timeout_s: float = 30) -> str:
    return subprocess.run(
        ["virsh", "-c", URI, *args], check=check, capture_output=True, text=True, timeout=timeout_s
    ).stdout


def domains(group: str, *, running_only: bool = False) -> set[str]:
    """Names of the group's domains as libvirt sees them (defined, or only running)."""
    out = virsh("list", "--name") if running_only else virsh("list", "--all", "--name")
    return {n for n in out.split() if n.startswith(f"{group}-")}


def free_block(count: int, start: int = 31000) -> int:
    """A base port whose base+1..base+count are free on 127.0.0.1 (VM N forwards base+N)."""
    for base in range(start, 60000, 50):
        try:
            for i in range(1, count + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of loopback ports")


def group_config(
    *,
    group: str,
    state_dir: Path,
    image_dir: Path,
    min_count: int = 1,
    max_count: int = 2,
    initial: int | None = None,
    policies: list[dict[str, Any]] | None = None,
    api_port: int | None = None,
    warm_pool: dict[str, Any] | None = None,
    libvirt: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A config (as a dict, for parse_config or a TOML file) for one libvirt group on loopback.
    ``libvirt`` adds provider.libvirt settings; other keywords replace whole sections
    (``template``, ``scaling``, ``health``...)."""
    data = {
        "group": {
            "name": group,
            "min": min_count,
            "max": max_count,
            "initial": min_count if initial is None else initial,
            "interval_s": 1.0,
        },
        "provider": {
            "kind": "libvirt",
            "libvirt": {
                "uri": URI,
                "image_dir": str(image_dir),
                "base_port": free_block(max_count + 2),
                "call_timeout_s": 10.0,
                **(libvirt or {}),
            },
        },
        "template": {"vcpus": 1, "memory_mb": 512},
        "policies": policies or [],
        "health": {"timeout_s": 2.0, "boot_timeout_s": 90, "unhealthy_threshold": 3},
        "drain": {"timeout_s": 30, "grace_s": 0.5},
        # The guest's busybox init ignores the ACPI button: a long graceful wait only delays scale-in.
        "launch": {"terminate_timeout_s": 2.0, "backoff_initial_s": 1.0, "backoff_max_s": 16.0},
        "api": {"bind": f"127.0.0.1:{api_port or free_port()}"},
        "state": {"dir": str(state_dir)},
        **({"warm_pool": warm_pool} if warm_pool else {}),
    }
    return {**data, **sections}


def to_toml(data: dict[str, Any]) -> str:
    """Just enough TOML for the tests' configs: tables of scalars and of lists of scalars, nested
    tables, and arrays of tables at any depth (``[[policies]]``, ``[[cluster.hosts]]``)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def tables(v: Any) -> bool:
        return isinstance(v, list) and any(isinstance(x, dict) for x in v)

    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any], header: str) -> None:
        lines.append(header)
        lines.extend(
            f"{k} = {value(v)}" for k, v in body.items() if not isinstance(v, dict) and not tables(v)
        )
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}", v, f"[{prefix}.{k}]")
            elif tables(v):
                for item in v:
                    table(f"{prefix}.{k}", item, f"[[{prefix}.{k}]]")

    for key, body in data.items():
        if isinstance(body, dict):
            table(key, body, f"[{key}]")
        elif isinstance(body, list):
            for item in body:
                table(key, item, f"[[{key}]]")
    return "\n".join(lines) + "\n"


def qemu_process(name: str) -> psutil.Process | None:
    """The QEMU process running domain ``name`` (libvirt passes ``-name guest=NAME,...``)."""
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if (
            cmd
            and "qemu-system" in os.path.basename(cmd[0])
            and any(a == f"guest={name}" or a.startswith(f"guest={name},") for a in cmd)
        ):
            return p
    return None


def qemu_count(names: set[str]) -> dict[str, int]:
    """QEMU processes per domain name (more than one would be a duplicate VM)."""
    counts: dict[str, int] = collections.Counter()
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        for name in names:
            if (
                cmd
                and "qemu-system" in os.path.basename(cmd[0])
                and any(a == f"guest={name}" or a.startswith(f"guest={name},") for a in cmd)
            ):
                counts[name] += 1
    return dict(counts)


def overlays(state_dir: Path) -> set[str]:
    """Overlay files the provider keeps for the group's VMs (state dir is reachable by qemu)."""
    folder = state_dir / "libvirt" / "overlays"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def db_instances(state_dir: Path, group: str) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(state_dir / "state.db", timeout=5)) as db:
        rows = db.execute("SELECT name, state FROM instances WHERE grp=? AND state != 'gone'", (group,))
        return dict(rows.fetchall())


def destroy_group(group: str, state_dir: Path | None = None) -> None:
    """Leave nothing of ``group`` behind: destroy and undefine every domain, remove the overlays."""
    for name in domains(group):
        virsh("destroy", name, check=False)
        virsh("undefine", name, "--managed-save", "--nvram", check=False)
        virsh("undefine", name, check=False)
    if state_dir is not None:
        for sub in ("overlays", "seeds"):
            folder = state_dir / "libvirt" / sub
            if folder.is_dir():
                for f in folder.iterdir():
                    f.unlink(missing_ok=True)


def keep_logs(state_dir: Path, group: str) -> Path:
    """Copy the run's logs (autoscaler, client, consoles) to artifacts/e2e-libvirt/GROUP for CI."""
    out = REPO / "artifacts" / "e2e-libvirt" / group
    out.mkdir(parents=True, exist_ok=True)
    for f in [
        *state_dir.glob("*.jsonl"),
        *state_dir.glob("*.log"),
        *(state_dir / "libvirt/console").glob("*"),
    ]:
        with contextlib.suppress(OSError):
            shutil.copy(f, out / f.name)
    return out


def libvirtd_pid() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(Path("/run/libvirtd.pid").read_text().strip())
        if psutil.pid_exists(pid) and "libvirtd" in psutil.Process(pid).name():
            return pid
    return None


def ensure_daemons() -> None:
    subprocess.run(["bash", str(REPO / "scripts/daemons.sh")], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def libvirtd_stopped() -> Iterator[int]:
    """Stop libvirtd for real (SIGTERM by its pid); always start it again on the way out.

    QEMU processes are not libvirtd's children in the sense that matters: they keep running, and
    the restarted daemon re-attaches to them from its status files.
    """
    pid = libvirtd_pid()
    assert pid is not None, "libvirtd is not running (no live pid in /run/libvirtd.pid)"
    try:
        os.kill(pid, signal.SIGTERM)
        psutil.Process(pid).wait(30)
        yield pid
    finally:
        ensure_daemons()


def percentiles(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(statistics.median(xs), 3),
        "p95": round(statistics.quantiles(xs, n=20, method="inclusive")[-1], 3)
        if len(xs) >= 2
        else round(xs[0], 3),
        "max": round(max(xs), 3),
    }


def metric_total(api_url: str, name: str) -> float:
    """Sum of a Prometheus counter's samples over every label set, from the control API."""
    text = httpx.get(f"{api_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
