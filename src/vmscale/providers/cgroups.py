"""CPU quotas for local instances through Linux cgroups (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``).

Why: a VM with one vCPU can never use more than one CPU, so "80 % busy" means the same on every
host. A plain process can use every core of the machine, which makes its utilisation meaningless
for scaling decisions. Putting each instance in its own cgroup with a quota of ``vcpus`` CPUs
gives it the same ceiling a VM would have; the worker count alone is only a rough cap.

Detection reads the mount table (``/proc/self/mounts``) rather than assuming paths, because hosts
differ: pure v2 (``/sys/fs/cgroup`` is cgroup2), hybrid (v1 controllers plus a v2 tree at
``/sys/fs/cgroup/unified`` that often has no ``cpu`` controller), or none (some containers).
The mount table path is a parameter so the unit tests can point it at a fake sysfs tree.

Layout created: ``<mount><own cgroup>/vmscale/<group>/<name>``, where *own cgroup* is vmscale's
own (read from ``/proc/self/cgroup``: the ``0::`` line on v2, the line naming ``cpu`` on v1). Under
a systemd unit with ``Delegate=yes`` the backends are therefore inside the unit's cgroup: systemd
owns them (``systemctl status`` lists them, stopping the unit kills what is left), and the unit may
write their quotas. On v2 a cgroup that holds processes cannot hand controllers down ("no internal
processes"), so when enabling ``cpu`` under its own cgroup is refused with EBUSY, vmscale moves
itself into a ``supervisor`` child first, as systemd's delegation guide describes. When the own
cgroup is not visible under the mount (a container that bind-mounts its subtree), the hierarchy's
root is used, as before. The instance's processes are written into the leaf's ``cgroup.procs``
(children forked later inherit it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_MOUNTS = Path("/proc/self/mounts")
DEFAULT_SELF_CGROUP = Path("/proc/self/cgroup")
ROOT_DIR = "vmscale"
SUPERVISOR = "supervisor"  # where vmscale moves itself on v2 so its own cgroup can delegate


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
    own: str = "/"  # vmscale's own cgroup, relative to the mount ("/" = the hierarchy's root)

    @property
    def mechanism(self) -> str:
        return "cgroup v2 cpu.max" if self.version == "v2" else "cgroup v1 cpu.cfs_quota_us"

    @property
    def base(self) -> Path:
        """vmscale's own cgroup: the instances' cgroups are created below it."""
        return self.mount / self.own.strip("/") if self.own.strip("/") else self.mount

    def path_for(self, group: str, name: str) -> Path:
        return self.base / ROOT_DIR / group / name

    def create(self, group: str, name: str, vcpus: int) -> Path:
        """Make (or reuse) the instance's cgroup and set its quota to ``vcpus`` CPUs."""
        leaf = self.path_for(group, name)
        if self.version == "v2":
            # A child can only use the cpu controller if every ancestor (from ours down) delegates it.
            for parent in (self.base, self.base / ROOT_DIR, self.base / ROOT_DIR / group):
                self._mkdir(parent)
                self._delegate_cpu(parent)
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

    def _delegate_cpu(self, parent: Path) -> None:
        control = parent / "cgroup.subtree_control"
        if "cpu" in _read(control).split():
            return
        try:
            _write(control, "+cpu")
            return
        except CgroupError as exc:
            cause = exc.__cause__
            if parent != self.base or not isinstance(cause, OSError) or cause.errno != errno.EBUSY:
                raise
        # "No internal processes": our own cgroup holds vmscale itself. Step into a child of it.
        supervisor = parent / SUPERVISOR
        self._mkdir(supervisor)
        _write(supervisor / "cgroup.procs", str(os.getpid()))
        try:
            _write(control, "+cpu")
        except CgroupError as exc:
            raise CgroupError(
                f"cannot hand the cpu controller down from {parent}: other processes share vmscale's "
                "cgroup; run vmscale in a cgroup of its own (as the systemd unit with Delegate=yes does)"
            ) from exc

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


def own_cgroup(version: Literal["v1", "v2"], mount: Path, self_cgroup: Path = DEFAULT_SELF_CGROUP) -> str:
    """This process's cgroup in the hierarchy at ``mount`` ("/" when it is not visible there)."""
    for line in _read(self_cgroup).splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        v2_line = hierarchy == "0" and not controllers
        if (version == "v2" and v2_line) or (version == "v1" and "cpu" in controllers.split(",")):
            path = path.removesuffix(f"/{SUPERVISOR}")  # moved there earlier: the base is its parent
            return path if (mount / path.strip("/")).is_dir() else "/"
    return "/"


def detect_cgroup_cpu(
    mounts_file: Path = DEFAULT_MOUNTS, period_us: int = 100_000, self_cgroup: Path = DEFAULT_SELF_CGROUP
) -> tuple[CgroupCpu | None, str]:
    """Find a writable cgroup hierarchy with the CPU controller: v2 preferred, then v1; instances
    go under this process's own cgroup in it.

    Returns the controller (or None) and a sentence saying what was found, for the log.
    """
    notes: list[str] = []
    v1: CgroupCpu | None = None
    for mount, fstype, options in _mount_table(mounts_file):
        if fstype == "cgroup2":
            found = CgroupCpu("v2", mount, period_us, own_cgroup("v2", mount, self_cgroup))
            controllers = _read(mount / "cgroup.controllers").split()
            if "cpu" not in controllers:
                notes.append(f"cgroup v2 at {mount} has no cpu controller")
            elif not os.access(found.base, os.W_OK):
                notes.append(f"cgroup v2 at {found.base} is not writable")
            else:
                return found, f"cgroup v2 cpu controller, instances under {found.base}"
        elif fstype == "cgroup" and "cpu" in options and v1 is None:
            found = CgroupCpu("v1", mount, period_us, own_cgroup("v1", mount, self_cgroup))
            if not (mount / "cpu.cfs_quota_us").exists():
                notes.append(f"cgroup v1 cpu at {mount} has no cpu.cfs_quota_us (CFS bandwidth off)")
            elif not os.access(found.base, os.W_OK):
                notes.append(f"cgroup v1 cpu at {found.base} is not writable")
            else:
                v1 = found
    if v1 is not None:
        return v1, f"cgroup v1 cpu controller, instances under {v1.base}"
    if not notes:
        notes.append("no cgroup hierarchy is mounted")
    return None, "; ".join(notes)
