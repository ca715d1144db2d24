"""The ``process`` provider: each instance is a local process on its own loopback port.

It runs ``provider.process.command`` (any program; placeholders for the port, name, index, vCPUs
and host) or, by default, vmscale's fib backend; ``process_command.py`` builds the argv and the
environment.

Why it is built this way:

* **Instances outlive the controller.** Each backend starts in its own session
  (``start_new_session``), so Ctrl-C on the controller or its crash does not reach it and the
  data path keeps serving; a restarted controller finds it again from its record.
* **Records, not memory, and never the command line.** ``launch`` writes
  ``<state_dir>/process/<name>.json`` (pid, the pid's create time, port, group, vCPUs, cgroup, log,
  marker, launching controller's epoch) atomically before the command starts. ``list`` is answered
  from those records, each checked against the live process table: the create time guards against
  a pid reused by an unrelated program, which is never adopted or signalled, and the environment
  marker ``VMSCALE_INSTANCE=<group>/<name>`` (from ``/proc/PID/environ``) confirms it where it is
  readable. The argv is the user's and proves nothing.
* **An instance is a process tree** (for the fib backend: uvicorn plus a pool of workers) led by
  the command, which is also its process-group leader; signals go to the whole group and CPU is
  summed over the tree.
* **A command that exits at once** is caught by ``launch`` (it watches the new process for
  ``start_check_s``) and reported as a launch failure with its exit status and the tail of its
  log, so the controller backs off instead of launching it again and again.
* **CPU limit.** With a cgroup CPU controller (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``) each
  instance gets a quota of ``vcpus`` CPUs, so its utilisation means what it means on a VM. The
  command may fork workers at start-up, so it must be inside the cgroup *before* it runs: every
  instance is spawned through a one-line ``sh`` shim that waits on a pipe; the provider writes
  the record, puts the shim's pid into ``cgroup.procs`` and only then tells it to ``exec`` the
  command (same pid). Errors moving the process thus surface here, as Python exceptions, not in
  a child; and a provider that dies before "go" leaves nothing running.
  Without a usable cgroup the instance is held only by its worker count (said once in the log).
* **Resize** (``resize``, ``process_resize.py``): a new cgroup quota and a new worker count, live.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from vmscale.config.process import ProcessProviderConfig
from vmscale.errors import InstanceNotFoundError, PermanentProviderError, TemporaryProviderError
from vmscale.providers import proctree
from vmscale.providers.base import (
    InstanceSpec,
    ProviderInstance,
    ProviderStatus,
    WarmKind,
    instance_port,
    warm_kinds_of,
)
from vmscale.providers.cgroups import (
    DEFAULT_MOUNTS,
    DEFAULT_SELF_CGROUP,
    CgroupCpu,
    CgroupError,
    detect_cgroup_cpu,
    pids_in,
    remove_cgroup,
)
from vmscale.providers.keyed_lock import KeyedLock
from vmscale.providers.process_command import (
    LAUNCH_BANNER,
    exit_description,
    exited_at_once,
    instance_argv,
    instance_env,
    log_tail,
    marker,
    release_shim,
    shim_argv,
)
from vmscale.providers.process_resize import check_vcpus, resize_live

_SHIM_RELEASE_TIMEOUT_S = 5.0
_POLL_S = 0.05
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SIGNAL_SETTLE_S = 2.0


class ProcessProvider:
    """Runs instances as local backend processes; see the module docstring for the design."""

    kind = "process"
    warm_kinds: frozenset[WarmKind] = warm_kinds_of("process")

    def __init__(
        self,
        config: ProcessProviderConfig,
        state_dir: Path,
        *,
        fib_max_n: int = 35,
        log: logging.Logger | None = None,
        mounts_file: Path = DEFAULT_MOUNTS,
        self_cgroup: Path = DEFAULT_SELF_CGROUP,
    ) -> None:
        self.config = config
        self.dir = Path(state_dir) / "process"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fib_max_n = fib_max_n
        self.log = log or logging.getLogger("vmscale.providers.process")
        self.python = config.python or sys.executable
        self._lock = threading.Lock()
        self._named = KeyedLock()  # per instance name
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # ours to reap
        self._returncodes: dict[str, int] = {}  # reaped, not yet reported
        self._exits: dict[str, str] = {}  # name -> why it last ended by itself
        self._cpu = proctree.TreeCpuSampler(self._leader_and_vcpus)
        self.cgroup: CgroupCpu | None = None
        self._cgroup_note = ""
        if config.cpu_limit != "workers":
            self.cgroup, self._cgroup_note = detect_cgroup_cpu(
                mounts_file, config.cgroup_period_us, self_cgroup
            )
            if self.cgroup is None and config.cpu_limit == "cgroup":
                raise PermanentProviderError(
                    f"provider.process.cpu_limit = 'cgroup' but {self._cgroup_note}; "
                    "use cpu_limit = 'auto' or 'workers', or run where a cgroup cpu controller is writable"
                )
        self.log.info("%s", self.describe_cpu_limit())

    # ----------------------------------------------------------------- helpers
    def describe_cpu_limit(self, vcpus: int = 1) -> str:
        """One sentence for the log and the demo: how instances are held to their vCPUs."""
        if self.cgroup is not None:
            return f"CPU limit: {self.cgroup.mechanism} ({vcpus:g} CPU per instance)"
        if self.config.cpu_limit == "workers":
            return "CPU limit: worker count only (cpu_limit = 'workers'); one fib worker per vCPU"
        return (
            f"no cgroup CPU controller available ({self._cgroup_note}); "
            "each instance limited by its worker count only"
        )

    def _record_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def workers_path(self, name: str) -> Path:
        return self.dir / f"{name}.workers"

    def _read_record(self, name: str) -> dict[str, Any] | None:
        try:
            return proctree.read_record(self._record_path(name))
        except proctree.BadRecordError as exc:
            self.log.warning("ignoring unusable instance record %s", exc)
            return None

    def _write_record(self, name: str, rec: dict[str, Any]) -> None:
        proctree.write_record(self._record_path(name), rec)

    def _reap(self, name: str) -> None:
        """Collect our own child's exit status (``_note_exit`` reports it)."""
        child = self._children.get(name)
        if child is not None and child.poll() is not None:
            self._children.pop(name, None)
            self._returncodes[name] = child.returncode

    def _note_exit(self, name: str, rec: dict[str, Any]) -> None:
        """Say why an instance that ended by itself is gone: its exit status (known when it was our
        child) and the last lines of its log, in the log and for ``last_exit``."""
        log = Path(rec.get("log") or self.log_path(name))
        tail = log_tail(log)
        message = f"instance {name} {exit_description(self._returncodes.pop(name, None))}"
        message += f"; last lines of {log}:\n{tail}" if tail else f"; its log {log} is empty"
        self.log.warning("%s", message)
        self._exits[name] = message

    def last_exit(self, name: str) -> str | None:
        """Why ``name`` last ended by itself (exit status, log tail), until it is launched again.

        For the controller's event when an instance vanishes (the provider contract has no place
        for it yet)."""
        return self._exits.get(name)

    def _live_record(
        self, name: str, *, keep_zombie: bool = False
    ) -> tuple[dict[str, Any], psutil.Process] | None:
        """The instance's record and leader if it still runs; a stale record is cleaned up.

        Our own children are reaped first, so a crashed one simply disappears. A leader we did
        not start (adopted after a controller restart) may linger as a zombie if nothing reaps
        it; with ``keep_zombie`` it is returned (``list`` reports it STOPPED until terminated).
        """
        self._reap(name)
        rec = self._read_record(name)
        if rec is None:
            return None
        proc = proctree.leader_of(rec)
        if proc is not None and (proctree.alive(proc) or (keep_zombie and proc.is_running())):
            return rec, proc
        self._note_exit(name, rec)
        self._cleanup(name, rec)
        return None

    def _cleanup(self, name: str, rec: dict[str, Any]) -> None:
        """Forget a dead instance: kill leftovers of its tree, remove its cgroup and record."""
        pid = int(rec["pid"])
        if not psutil.pid_exists(pid) or proctree.leader_of(rec) is not None:
            # Either our leader (dead or a zombie) or nobody: the kernel never hands out a pid
            # still used as a process-group id, so members of group ``pid`` are this instance's
            # orphaned workers, never a stranger's. A reused pid (other create time) is left alone.
            proctree.signal_group(pid, signal.SIGKILL)
        cgroup = rec.get("cgroup") or ""
        if cgroup:
            for member in pids_in(Path(cgroup)):  # only this instance's processes can be in it
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
            try:
                remove_cgroup(Path(cgroup), timeout_s=self.config.stop_timeout_s)
            except CgroupError as exc:
                self.log.warning("instance %s: %s", name, exc)
        with contextlib.suppress(FileNotFoundError):
            self._record_path(name).unlink()
        self.workers_path(name).unlink(missing_ok=True)
        self._cpu.forget(name)
        self._returncodes.pop(name, None)

    def _instance(self, rec: dict[str, Any], status: ProviderStatus) -> ProviderInstance:
        details = {"pid": str(rec["pid"]), "port": str(rec["port"]), "log": str(rec.get("log", ""))}
        details["epoch"] = str(rec.get("epoch", 0))  # the launching controller's term (fence.py)
        if rec.get("cgroup"):
            details["cgroup"] = str(rec["cgroup"])
        return ProviderInstance(
            name=str(rec["name"]),
            group=str(rec["group"]),
            status=status,
            endpoint=f"http://{rec.get('host', self.config.host)}:{rec['port']}",
            vcpus=int(rec.get("vcpus", 1)),
            created_at=float(rec["create_time"]),
            details=details,
        )

    # ------------------------------------------------------------------ launch
    def launch(self, spec: InstanceSpec) -> ProviderInstance:
        """Start the command (or return the live instance already recorded under this name)."""
        if not _SAFE_NAME.match(spec.name):
            raise PermanentProviderError(
                f"cannot launch {spec.name!r}: instance names must be letters, digits, '-', '_' or '.' "
                "(they become file and cgroup names)",
                instance=spec.name,
            )
        with self._named(spec.name):
            live = self._live_record(spec.name)
            if live is not None:
                return self._instance(live[0], proctree.status_of(live[1]))
            port = instance_port(self.config.base_port, spec.index)
            self._check_port(spec.name, port)
            cgroup = self._make_cgroup(spec)
            try:
                return self._spawn(spec, port, cgroup)
            except BaseException:
                if cgroup is not None:
                    with contextlib.suppress(CgroupError):
                        remove_cgroup(cgroup, timeout_s=1.0)
                raise

    def _check_port(self, name: str, port: int) -> None:
        others = ((p.stem, self._read_record(p.stem)) for p in self.dir.glob("*.json") if p.stem != name)
        problem = proctree.port_problem(self.config.host, port, ((n, r) for n, r in others if r))
        if problem:
            raise PermanentProviderError(f"cannot launch {name}: {problem}", instance=name)

    def _make_cgroup(self, spec: InstanceSpec) -> Path | None:
        if self.cgroup is None:
            return None
        try:
            return self.cgroup.create(spec.group, spec.name, spec.vcpus)
        except CgroupError as exc:
            self._cgroup_failed(spec.name, exc)
            return None

    def _cgroup_failed(self, name: str, exc: CgroupError) -> None:
        if self.config.cpu_limit == "cgroup":
            raise PermanentProviderError(
                f"cannot launch {name}: {exc} (cpu_limit = 'cgroup')", instance=name
            ) from exc
        self.log.warning("%s; falling back to worker-count CPU limits for all instances", exc)
        self.cgroup, self._cgroup_note = None, str(exc)
        return None

    def _spawn(self, spec: InstanceSpec, port: int, cgroup: Path | None) -> ProviderInstance:
        command = instance_argv(
            self.config,
            spec,
            port,
            python=self.python,
            fib_max_n=self.fib_max_n,
            workers_file=self.workers_path(spec.name),
        )
        log_path = self.log_path(spec.name)
        try:
            with open(log_path, "ab") as log_file:
                log_file.write(f"{LAUNCH_BANNER} {spec.name} at {time.ctime()}: {command}\n".encode())
                log_file.flush()
                child = subprocess.Popen(
                    shim_argv(command),
                    stdin=subprocess.PIPE,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    env=instance_env(self.config, spec, port),
                    cwd=self.config.cwd or None,
                )
        except OSError as exc:
            raise PermanentProviderError(
                f"cannot launch {spec.name}: cannot start its shim: {exc.strerror or exc}", instance=spec.name
            ) from exc
        try:
            create_time = psutil.Process(child.pid).create_time()
        except psutil.Error as exc:
            child.kill()
            child.wait(timeout=5)
            message = f"{spec.name} exited at once; see {log_path}"
            raise TemporaryProviderError(message, instance=spec.name) from exc
        rec = {
            "name": spec.name, "group": spec.group, "pid": child.pid, "create_time": create_time,
            "port": port, "host": self.config.host, "vcpus": spec.vcpus,
            "cgroup": str(cgroup) if cgroup else "", "log": str(log_path), "command": command,
            "marker": marker(spec.group, spec.name), "epoch": spec.epoch,
        }  # fmt: skip
        self._write_record(spec.name, rec)
        self._children[spec.name] = child
        self._exits.pop(spec.name, None)
        if cgroup is not None:
            self._move_to_cgroup(spec.name, child, cgroup, rec)
        release_shim(spec.name, child, rec)
        self._watch_start(spec.name, child, rec, port)
        self.log.info("launched %s: pid %d on port %d (log %s)", spec.name, child.pid, port, log_path)
        return self._instance(rec, ProviderStatus.RUNNING)

    def _move_to_cgroup(
        self, name: str, child: subprocess.Popen[bytes], cgroup: Path, rec: dict[str, Any]
    ) -> None:
        """Put the waiting shim in the instance's cgroup (its command inherits it)."""
        assert self.cgroup is not None
        try:
            self.cgroup.add_pid(cgroup, child.pid)
        except CgroupError as exc:
            if self.config.cpu_limit == "cgroup":
                child.kill()
                child.wait(timeout=_SHIM_RELEASE_TIMEOUT_S)
                self._cleanup(name, rec)
                raise PermanentProviderError(f"cannot launch {name}: {exc}", instance=name) from exc
            self._cgroup_failed(name, exc)
            with contextlib.suppress(CgroupError):
                remove_cgroup(cgroup, timeout_s=1.0)
            rec["cgroup"] = ""
            self._write_record(name, rec)

    def _watch_start(self, name: str, child: subprocess.Popen[bytes], rec: dict[str, Any], port: int) -> None:
        """Wait up to ``start_check_s`` for the command to exit at once (a typo in an argument, a
        missing module, a port it cannot bind): that is a launch failure, reported with its exit
        status and the last lines of its log. It ends early once the port accepts connections."""
        if not exited_at_once(child, self.config.host, port, self.config.start_check_s):
            return
        self._children.pop(name, None)
        self._cleanup(name, rec)
        tail = log_tail(Path(rec["log"]))
        shown = f"; last lines of {rec['log']}:\n{tail}" if tail else f"; its log {rec['log']} is empty"
        raise TemporaryProviderError(
            f"{name} {exit_description(child.returncode)} right after it started{shown}", instance=name
        )

    # ------------------------------------------------------------- terminate
    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL what is left after the timeout; then cgroup and record go."""
        with self._named(name):
            self._reap(name)
            rec = self._read_record(name)
            if rec is None:
                return
            leader = proctree.leader_of(rec)
            if leader is not None and proctree.alive(leader):
                self._stop_tree(name, leader, graceful_timeout_s)
            self._cleanup(name, rec)
            self._children.pop(name, None)
            self.log.info("terminated %s (log kept at %s)", name, rec.get("log", ""))

    def _stop_tree(self, name: str, leader: psutil.Process, graceful_timeout_s: float) -> None:
        tree = proctree.tree(leader)
        pgid = leader.pid
        proctree.signal_group(pgid, signal.SIGTERM)
        proctree.signal_group(pgid, signal.SIGCONT)  # a paused instance must wake up to see SIGTERM
        if self._wait_gone(name, tree, graceful_timeout_s):
            return
        self.log.warning("%s did not stop within %.1f s; killing it", name, graceful_timeout_s)
        proctree.signal_group(pgid, signal.SIGKILL)
        for proc in tree:  # a worker that left the group still belongs to the instance
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if not self._wait_gone(name, tree, self.config.stop_timeout_s):
            survivors = [p.pid for p in tree if proctree.alive(p)]
            raise TemporaryProviderError(f"{name}: processes {survivors} survive SIGKILL", instance=name)

    def _wait_gone(self, name: str, tree: list[psutil.Process], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            self._reap(name)
            if not any(proctree.alive(p) for p in tree):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    # ------------------------------------------------------------ observing
    def list(self, group: str) -> list[ProviderInstance]:
        """Instances of ``group`` whose recorded process is still the same live process."""
        found = []
        for path in sorted(self.dir.glob("*.json")):
            rec = self._read_record(path.stem)
            if rec is None or rec.get("group") != group:
                continue
            lock = self._named(path.stem)
            if lock.acquire(blocking=False):
                try:
                    live = self._live_record(path.stem, keep_zombie=True)
                finally:
                    lock.release()
                if live is not None:
                    found.append(self._instance(live[0], proctree.status_of(live[1])))
            else:  # being launched or terminated right now: report it as it is, touch nothing
                leader = proctree.leader_of(rec)
                if leader is not None and proctree.alive(leader):
                    found.append(self._instance(rec, proctree.status_of(leader)))
        return found

    def sample(self, names: Sequence[str]) -> dict[str, float]:
        """CPU of each instance's whole process tree, in percent of its vCPUs, since the last call."""
        return self._cpu.sample(names)

    def _leader_and_vcpus(self, name: str) -> tuple[psutil.Process, int] | None:
        rec = self._read_record(name)
        proc = proctree.leader_of(rec) if rec is not None else None
        if rec is None or proc is None or not proctree.alive(proc):
            return None
        return proc, int(rec.get("vcpus", 1))

    # --------------------------------------------------------- resize (Resizer role)
    can_shrink = True  # a smaller quota and fewer workers take effect at once

    def resize(self, name: str, vcpus: int) -> None:
        """Give a running instance ``vcpus`` CPUs: its cgroup quota and its fib worker count, live."""
        check_vcpus(name, vcpus)
        with self._named(name):
            live = self._live_record(name)
            if live is None:
                raise InstanceNotFoundError(f"no running instance named {name}", instance=name)
            rec, leader = live
            before = rec.get("vcpus", 1)
            resize_live(
                name,
                rec,
                leader.pid,
                vcpus,
                cgroup=self.cgroup,
                workers_file=self.workers_path(name),
                log=self.log,
            )
            self._write_record(name, rec)
            self._cpu.forget(name)  # re-read with the new vCPUs: a percentage of the new size
        self.log.info("resized %s: %s -> %d vCPUs", name, before, vcpus)

    # --------------------------------------------------------- warm pool
    def _signal_instance(self, name: str, sig: int) -> None:
        with self._named(name):
            live = self._live_record(name)
            if live is None:
                raise InstanceNotFoundError(f"no running instance named {name}", instance=name)
            if not proctree.signal_and_settle(live[1], sig, _SIGNAL_SETTLE_S):
                state = "paused" if sig == signal.SIGSTOP else "resumed"
                self.log.warning("%s: still not %s after %.0f s", name, state, _SIGNAL_SETTLE_S)

    def pause(self, name: str, kind: WarmKind = "paused") -> None:
        """SIGSTOP the whole tree: it keeps its memory and port but uses no CPU."""
        if kind != "paused":
            why = f"cannot park {name} as {kind!r}: processes can only be paused (SIGSTOP)"
            raise PermanentProviderError(f"{why}; 'saved' needs the libvirt provider", instance=name)
        self._signal_instance(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self._signal_instance(name, signal.SIGCONT)

    def close(self) -> None:
        """Nothing to release: instances keep running on purpose (they outlive the controller)."""
