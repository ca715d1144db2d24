"""The backend's CPU work and how many CPUs it may use.

``fib`` is the deliberately exponential recursive Fibonacci of the original system: one request
is real CPU work (roughly x1.6 per step of n), which is what makes an instance overload.

``usable_cpus`` answers "how many workers should this process run": the CPUs in its affinity
mask, further limited by a cgroup CPU quota (containers, systemd ``CPUQuota=``), because a
process pinned to 8 CPUs but given a 2-CPU quota only gets 2 CPUs' worth of time.

Only the standard library is imported here: this module also runs inside the Debian 12 guest
image, which has Debian's Python packages only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: The largest n the load client will ever ask for; the backend's own ceiling is configurable.
ABSOLUTE_MAX_N = 45


def fib(n: int) -> int:
    """The n-th Fibonacci number, computed the slow way on purpose (exponential time)."""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def _quota_v2(root: Path, rel: str) -> float | None:
    """CPUs allowed by cgroup v2 ``cpu.max`` ("max 100000" or "200000 100000"), walking up the tree."""
    path = root / rel.lstrip("/")
    best: float | None = None
    while True:
        try:
            quota, period = (path / "cpu.max").read_text().split()[:2]
            if quota != "max":
                cpus = int(quota) / int(period)
                best = cpus if best is None else min(best, cpus)
        except (OSError, ValueError):
            pass
        if path == root or root not in path.parents:
            return best
        path = path.parent


def _quota_v1(root: Path, rel: str) -> float | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 means no quota)."""
    for base in (root / "cpu" / rel.lstrip("/"), root / "cpu,cpuacct" / rel.lstrip("/"), root / "cpu"):
        try:
            quota = int((base / "cpu.cfs_quota_us").read_text())
            period = int((base / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            return quota / period
        return None
    return None


def cgroup_cpu_limit(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), or None when there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # cgroup v2 unified hierarchy: "0::/some/path"
            return _quota_v2(root, rel)
        if "cpu" in controllers.split(","):
            return _quota_v1(root, rel)
    return None


def usable_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup quota (rounded up, at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)
