"""Live migration of a running domain from one host to another, peer to peer, disks copied.

``live_migrate`` asks the *source* libvirtd to move the domain itself (``VIR_MIGRATE_PEER2PEER``:
the source daemon connects to the destination daemon at its peer URI, so vmscale's connection is
not in the data path and a controller restart mid-migration does not strand it) with:

* ``LIVE``: the guest keeps running while its memory is copied; it pauses only for the final
  switch-over (the "downtime", ~20-100 ms for a small TCG guest here);
* ``NON_SHARED_INC``: the disks are not shared between hosts, so the writable ones are copied (only
  the overlay's own clusters: the base image is already on the destination, where the caller has
  pre-created an empty overlay over it);
* ``PERSIST_DEST | UNDEFINE_SOURCE``: afterwards the domain is defined on the destination only;
* ``ABORT_ON_ERROR``: an I/O error during the copy aborts instead of carrying on.

It is bounded: past ``timeout_s`` the job is aborted (``virDomainAbortJob``) and the guest goes on
running on the source, untouched. Progress comes from ``virDomainGetJobStats`` while the job runs,
and the final figures (total time, downtime, bytes) from the completed job's stats on the
destination.
"""

from __future__ import annotations

import contextlib
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import libvirt

from vmscale.clock import Clock
from vmscale.errors import ProviderError, TemporaryProviderError
from vmscale.providers.libvirt.connection import BoundedCalls

FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    | libvirt.VIR_MIGRATE_NON_SHARED_INC
    | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
)
ABORT_WAIT_S = 60.0  # after an abort, how long the migrate call may take to come back


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    name: str
    src: str
    dst: str
    elapsed_s: float
    memory_total: int = 0
    memory_processed: int = 0
    memory_remaining: int = 0
    disk_total: int = 0
    disk_processed: int = 0
    disk_remaining: int = 0

    @property
    def fraction(self) -> float | None:
        """Share of the bytes known so far that is copied (memory may be re-sent, so it can dip)."""
        total = self.memory_total + self.disk_total
        return None if total <= 0 else min(1.0, (self.memory_processed + self.disk_processed) / total)


@dataclass(frozen=True, slots=True)
class MigrationResult:
    name: str
    src: str
    dst: str
    wall_s: float  # from asking the source to it answering
    total_ms: int | None = None  # libvirt's time_elapsed of the job
    downtime_ms: int | None = None  # how long the guest was paused for the switch-over
    memory_bytes: int | None = None
    disk_bytes: int | None = None
    overlay_bytes: int | None = None  # what the source overlay held: the disk data to copy
    stats: Mapping[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, str]:
        """For ``ProviderInstance.details`` (strings only)."""
        out = {"migrated_from": self.src, "migration_wall_s": f"{self.wall_s:.3f}"}
        for key, value in (
            ("migration_total_ms", self.total_ms),
            ("migration_downtime_ms", self.downtime_ms),
            ("migration_memory_bytes", self.memory_bytes),
            ("migration_disk_bytes", self.disk_bytes),
            ("migration_overlay_bytes", self.overlay_bytes),
        ):
            if value is not None:
                out[key] = str(value)
        return out


def progress_from(
    stats: Mapping[str, Any], name: str, src: str, dst: str, elapsed_s: float
) -> MigrationProgress:
    """A job-stats dict (``virDomainGetJobStats``) as progress; absent figures are 0."""

    def num(key: str) -> int:
        return int(stats.get(key) or 0)

    return MigrationProgress(
        name,
        src,
        dst,
        elapsed_s,
        num("memory_total"),
        num("memory_processed"),
        num("memory_remaining"),
        num("disk_total"),
        num("disk_processed"),
        num("disk_remaining"),
    )


def result_from(
    stats: Mapping[str, Any],
    name: str,
    src: str,
    dst: str,
    wall_s: float,
    last: MigrationProgress | None = None,
) -> MigrationResult:
    """The completed job's stats (``VIR_DOMAIN_JOB_STATS_COMPLETED``) as a result; the disk bytes
    from the last progress seen when the completed stats do not count them."""

    def opt(key: str) -> int | None:
        return int(stats[key]) if key in stats else None

    disk = opt("disk_processed")
    if not disk and last is not None:
        # Disks are copied before memory: once memory is moving, the whole disk_total was sent.
        disk = last.disk_total if last.memory_processed else last.disk_processed

    return MigrationResult(
        name,
        src,
        dst,
        wall_s,
        total_ms=opt("time_elapsed"),
        downtime_ms=opt("downtime"),
        memory_bytes=opt("memory_processed"),
        disk_bytes=disk,
        stats=dict(stats),
    )


def disks_to_copy(domain_xml: str) -> list[str]:
    """Target devices of the writable file-backed disks (the ones ``NON_SHARED_INC`` must copy)."""
    root = ET.fromstring(domain_xml)
    out = []
    for disk in root.iterfind("devices/disk"):
        if disk.get("device", "disk") != "disk" or disk.find("readonly") is not None:
            continue
        target = disk.find("target")
        if disk.find("source") is not None and target is not None and target.get("dev"):
            out.append(str(target.get("dev")))
    return out


def live_migrate(
    src: BoundedCalls,
    name: str,
    *,
    src_host: str,
    dst_host: str,
    dst_uri: str,
    disks: list[str],
    timeout_s: float,
    clock: Clock,
    progress: Callable[[MigrationProgress], None] | None = None,
    poll_s: float = 0.25,
) -> tuple[float, MigrationProgress | None]:
    """Migrate ``name`` from the source connection to ``dst_uri`` (as the source daemon reaches it).

    Returns the wall time and the last progress seen (the destination's completed-job figures lack
    the disk copy, which happens first). On failure or timeout raises ``ProviderError``; the domain
    is then still on the source (libvirt rolls an unfinished migration back).
    """
    params = {libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: disks} if disks else {}
    box: dict[str, BaseException] = {}
    done = threading.Event()

    def run() -> None:
        try:
            src.call(
                "migrate",
                lambda c: c.lookupByName(name).migrateToURI3(dst_uri, params, FLAGS),
                instance=name,
                timeout_s=timeout_s + ABORT_WAIT_S,
            )
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    t0 = clock.monotonic()
    deadline = t0 + timeout_s
    last: MigrationProgress | None = None
    threading.Thread(target=run, name=f"migrate:{name}", daemon=True).start()
    while not done.wait(poll_s):
        elapsed = clock.monotonic() - t0
        if clock.monotonic() > deadline:
            _abort(src, name)
            if not done.wait(ABORT_WAIT_S):
                raise TemporaryProviderError(
                    f"migration of {name} to {dst_host} did not stop after an abort; check both hosts",
                    instance=name,
                )
            raise TemporaryProviderError(
                f"migration of {name} from {src_host} to {dst_host} aborted after {timeout_s:.0f} s "
                f"(provider.libvirt.migrate_timeout_s); it stays on {src_host}",
                instance=name,
            )
        try:
            stats = src.call("job stats", lambda c: c.lookupByName(name).jobStats(0), instance=name)
        except ProviderError:
            continue  # the job may just have finished; the next round will know
        last = progress_from(stats, name, src_host, dst_host, elapsed)
        if progress is not None:
            progress(last)
    error = box.get("error")
    if error is not None:
        if isinstance(error, ProviderError):
            raise type(error)(
                f"migration of {name} from {src_host} to {dst_host} failed; it stays on {src_host}: {error}",
                instance=name,
            ) from error
        raise error
    return clock.monotonic() - t0, last


def _abort(src: BoundedCalls, name: str) -> None:
    # An error here means the job ended by itself meanwhile: the migrate call says how.
    with contextlib.suppress(ProviderError):
        src.call("abort job", lambda c: c.lookupByName(name).abortJob(), instance=name)


def completed_stats(conn: BoundedCalls, name: str) -> dict[str, Any]:
    """The finished job's statistics as the destination keeps them ({} when it has none)."""
    try:
        return dict(
            conn.call(
                "completed job stats",
                lambda c: c.lookupByName(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED),
                instance=name,
            )
        )
    except ProviderError:
        return {}
