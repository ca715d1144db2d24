"""CPU quotas for local instances through Linux cgroups (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``).

Why: a VM with one vCPU can never use more than one CPU, so "80 % busy" means the same on every
host. A plain process can use every core of the machine, which makes its utilisation meaningless
for scaling decisions. Putting each instance in its own cgroup with a quota of ``vcpus`` CPUs
gives it the same ceiling a VM would have; the worker count alone is only a rough cap.

Detection reads the mount table (``/proc/self/mounts``) rather than assuming paths, because hosts
differ: pure v2 (``/sys/fs/cgroup`` is cgroup2), hybrid (v1 controllers plus a v2 tree at
``/sys/fs/cgroup/unified`` that often has no ``cpu`` controller), or none (some containers).
The mount table path is a parameter so the unit tests can point it at a fake sysfs tree.

Layout created: ``<mount>/vmscale/<group>/<name>``; the instance's processes are written into
the leaf's ``cgroup.procs`` (children forked later inherit it).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_MOUNTS = Path("/proc/self/mounts")
ROOT_DIR = "vmscale"


class CgroupError(Exception):
    """A cgroup file could not be created, written or removed (carries the path and the OS error)."""


def _unescape(field: str) -> str:
    """Mount table fields escape space, tab, newline and backslash as octal (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class CgroupCpu:
    """A usable cgroup CPU controller: which version and where its hierarchy is mounted."""

    version: Literal["v1", "v2"]
    mount: Path
    period_us: int = 100_000

    @property
    def mechanism(self) -> str:
        return "cgroup v2 cpu.max" if self.version == "v2" else "cgroup v1 cpu.cfs_quota_us"

    def path_for(self, group: str, name: str) -> Path:
        return self.mount / ROOT_DIR / group / name

    def create(self, group: str, name: str, vcpus: int) -> Path:
        """Make (or reuse) the instance's cgroup and set its quota to ``vcpus`` CPUs."""
        leaf = self.path_for(group, name)
        if self.version == "v2":
            # A child can only use the cpu controller if every ancestor delegates it.
            parents = [self.mount, self.mount / ROOT_DIR, self.mount / ROOT_DIR / group]
            for parent in parents:
                self._mkdir(parent)
                control = parent / "cgroup.subtree_control"
                if "cpu" not in _read(control).split():
                    _write(control, "+cpu")
        self._mkdir(leaf)
        self.set_quota(leaf, vcpus)
        return leaf

    def set_quota(self, cgroup: Path, vcpus: int) -> None:
        """Give an existing cgroup a quota of ``vcpus`` CPUs; takes effect at the next period.

        This is how a process instance is resized: the kernel applies a new quota to the running
        processes at once, no restart. (v1 writes the period first: a quota is checked against it.)
        """
        quota_us = max(1, vcpus) * self.period_us
        if self.version == "v2":
            _write(cgroup / "cpu.max", f"{quota_us} {self.period_us}")
        else:
            _write(cgroup / "cpu.cfs_period_us", str(self.period_us))
            _write(cgroup / "cpu.cfs_quota_us", str(quota_us))

    @staticmethod
    def _mkdir(path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CgroupError(f"cannot create cgroup {path}: {exc.strerror or exc}") from exc

    @staticmethod
    def add_pid(cgroup: Path, pid: int) -> None:
        _write(cgroup / "cgroup.procs", str(pid))

    def read_quota(self, cgroup: Path) -> tuple[int, int] | None:
        """``(quota_us, period_us)`` as the kernel holds it, or None when unlimited/unreadable."""
        if self.version == "v2":
            parts = _read(cgroup / "cpu.max").split()
            if len(parts) != 2 or parts[0] == "max":
                return None
            return int(parts[0]), int(parts[1])
        quota, period = _read(cgroup / "cpu.cfs_quota_us"), _read(cgroup / "cpu.cfs_period_us")
        if not quota or not period or int(quota) < 0:
            return None
        return int(quota), int(period)


def pids_in(cgroup: Path) -> list[int]:
    """Processes still in a cgroup (empty when it does not exist)."""
    return [int(line) for line in _read(cgroup / "cgroup.procs").split() if line.isdigit()]


def remove_cgroup(cgroup: Path, timeout_s: float = 5.0) -> None:
    """Remove an instance's cgroup, then its group directory if no other instance uses it.

    The kernel refuses (EBUSY) while a process is still inside, e.g. a dying worker that has not
    been reaped yet, so retry until ``timeout_s``. A missing cgroup is success.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.rmdir(cgroup)
            break
        except FileNotFoundError:
            break
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise CgroupError(f"cannot remove cgroup {cgroup}: {exc.strerror or exc}") from exc
            time.sleep(0.05)
    with contextlib.suppress(OSError):  # still used by a sibling instance: leave it
        os.rmdir(cgroup.parent)


def _mount_table(mounts_file: Path) -> list[tuple[Path, str, set[str]]]:
    rows = []
    for line in _read(mounts_file).splitlines():
        fields = line.split()
        if len(fields) >= 4:
            rows.append((Path(_unescape(fields[1])), fields[2], set(fields[3].split(","))))
    return rows


def detect_cgroup_cpu(
    mounts_file: Path = DEFAULT_MOUNTS, period_us: int = 100_000
) -> tuple[CgroupCpu | None, str]:
    """Find a writable cgroup hierarchy with the CPU controller: v2 preferred, then v1.

    Returns the controller (or None) and a sentence saying what was found, for the log.
    """
    notes: list[str] = []
    v1: CgroupCpu | None = None
    for mount, fstype, options in _mount_table(mounts_file):
        if fstype == "cgroup2":
            controllers = _read(mount / "cgroup.controllers").split()
            if "cpu" not in controllers:
                notes.append(f"cgroup v2 at {mount} has no cpu controller")
            elif not os.access(mount, os.W_OK):
                notes.append(f"cgroup v2 at {mount} is not writable")
            else:
                return CgroupCpu("v2", mount, period_us), f"cgroup v2 cpu controller at {mount}"
        elif fstype == "cgroup" and "cpu" in options and v1 is None:
            if not (mount / "cpu.cfs_quota_us").exists():
                notes.append(f"cgroup v1 cpu at {mount} has no cpu.cfs_quota_us (CFS bandwidth off)")
            elif not os.access(mount, os.W_OK):
                notes.append(f"cgroup v1 cpu at {mount} is not writable")
            else:
                v1 = CgroupCpu("v1", mount, period_us)
    if v1 is not None:
        return v1, f"cgroup v1 cpu controller at {v1.mount}"
    if not notes:
        notes.append("no cgroup hierarchy is mounted")
    return None, "; ".join(notes)
