"""Resizing a running process instance (the process provider's ``Resizer`` role; part of the
provider's implementation, so it uses the provider's records and locks).

Two things change, both live: the cgroup CPU quota (the kernel applies a new ``cpu.max`` or
``cpu.cfs_quota_us`` to the running processes at once), and the backend's fib worker count, which
the provider writes to the instance's workers file and announces with SIGHUP to the backend alone
(its pool workers ignore SIGHUP). A file and a signal rather than an HTTP call: the backend's port is
the public one, and without a cgroup the worker count is the only limit, which nothing in /proc
could tell the backend. A backend started by a vmscale without live resizing (no ``--workers-file``
on its command line) would die of SIGHUP: only its quota changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from vmscale.errors import PermanentProviderError, TemporaryProviderError
from vmscale.providers import proctree
from vmscale.providers.cgroups import CgroupCpu, CgroupError

MAX_VCPUS = 64  # template.vcpus's bound


def check_vcpus(name: str, vcpus: int) -> None:
    if not 1 <= vcpus <= MAX_VCPUS:
        raise PermanentProviderError(
            f"cannot resize {name} to {vcpus} vCPUs: between 1 and {MAX_VCPUS}", instance=name
        )


def resize_live(
    name: str,
    rec: dict[str, Any],
    pid: int,
    vcpus: int,
    *,
    cgroup: CgroupCpu | None,
    workers_file: Path,
    log: logging.Logger,
) -> None:
    """Apply ``vcpus`` to the running instance ``rec`` describes, and record it in ``rec``."""
    if rec.get("cgroup") and cgroup is not None:
        try:
            cgroup.set_quota(Path(rec["cgroup"]), vcpus)
        except CgroupError as exc:
            raise TemporaryProviderError(f"cannot resize {name}: {exc}", instance=name) from exc
    if "--workers-file" in rec.get("command", []):
        proctree.write_text_atomic(workers_file, f"{vcpus}\n")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)  # the backend only: its workers ignore SIGHUP
    else:
        log.warning("%s predates live resizing: only its CPU quota changed", name)
    rec["vcpus"] = vcpus
