"""Moving one domain to another host: the checks, the disks, the migration, the clean-up.

``move_domain`` is what ``MultiHostProvider.migrate`` (and so a drain or a consolidation) runs:

1. the destination must pass the same filters as placement (answering, not cordoned or draining,
   within its memory and vCPU headroom and instance limit), from fresh facts;
2. the image must be on the destination; an empty overlay over the same base disk is created in
   its pool (the migration fills it with the source overlay's clusters), and a cloud-init seed ISO
   is copied over;
3. ``migrate.live_migrate`` moves the running guest;
4. on success the source's overlay and seed are deleted and the completed job's figures returned;
   on failure whatever was made on the destination is deleted and the guest is still on the source
   (unless it had in fact arrived, which is checked before anything is deleted).
"""

from __future__ import annotations

import contextlib
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import PurePosixPath

from vmscale.errors import PermanentProviderError, ProviderError, TemporaryProviderError
from vmscale.hosts.inventory import HostInventory
from vmscale.hosts.remote import HostProvider
from vmscale.plan.placement import Request, why_not
from vmscale.providers.libvirt import xml
from vmscale.providers.libvirt.migrate import (
    MigrationProgress,
    MigrationResult,
    completed_stats,
    disks_to_copy,
    live_migrate,
    result_from,
)

log = logging.getLogger(__name__)


def _size(domain_xml: str) -> tuple[int, int, list[str], bool]:
    """(vCPUs, memory MiB, image files it boots from, has a seed ISO) from a domain's XML."""
    root = ET.fromstring(domain_xml)
    vcpus = int(root.findtext("vcpu", "1"))
    mem = root.find("memory")
    unit = (mem.get("unit") if mem is not None else None) or "KiB"
    value = int(mem.text or 0) if mem is not None else 0
    memory_mb = value if unit == "MiB" else value // 1024 if unit == "KiB" else value // 2**20
    boot_files = [
        PurePosixPath(p).name for p in (root.findtext("os/kernel"), root.findtext("os/initrd")) if p
    ]
    has_seed = any(d.get("device") == "cdrom" for d in root.iterfind("devices/disk"))
    return vcpus, memory_mb, boot_files, has_seed


def move_domain(
    name: str,
    src: HostProvider,
    dst: HostProvider,
    inventory: HostInventory,
    *,
    timeout_s: float,
    progress: Callable[[MigrationProgress], None] | None = None,
) -> MigrationResult:
    domain_xml = src.conn.call("read domain", lambda c: c.lookupByName(name).XMLDesc(0), instance=name)
    meta = xml.parse_metadata(domain_xml)
    if meta is None:
        raise PermanentProviderError(
            f"{name} on {src.host} is not a vmscale instance: not moving it", instance=name
        )
    vcpus, memory_mb, boot_files, has_seed = _size(domain_xml)
    inventory.refresh()
    view = next(v for v in inventory.views(meta.group) if v.name == dst.host)
    problem = why_not(Request(name, vcpus, memory_mb), view)
    if problem:
        raise TemporaryProviderError(f"not moving {name} to {dst.host}: it is {problem}", instance=name)

    overlay, seed = f"{name}.qcow2", f"{name}.iso"
    backing, capacity = src.storage.backing_of(overlay)
    overlay_bytes = src.storage.allocation(overlay)
    if src.config.boot == "kernel":
        dst.storage.image_capacity([PurePosixPath(backing).name, *boot_files])
    made_overlay = not dst.storage.exists(overlay)
    dst.storage.create_overlay(overlay, backing, capacity)
    made_seed = has_seed and not dst.storage.exists(seed)
    if made_seed:
        dst.storage.upload(seed, src.storage.read(seed))

    try:
        wall, last = live_migrate(
            src.conn,
            name,
            src_host=src.host,
            dst_host=dst.host,
            dst_uri=inventory.config(dst.host).peer_uri,
            disks=disks_to_copy(domain_xml),
            timeout_s=timeout_s,
            clock=src.clock,
            progress=progress,
        )
    except ProviderError:
        if _landed(name, src, dst):
            log.warning(
                "migration of %s reported an error but the guest runs on %s: keeping it there", name, dst.host
            )
            wall, last = math.nan, None
        else:
            if not dst.has_domain(name):
                for volume, made in ((overlay, made_overlay), (seed, made_seed)):
                    if made:
                        with contextlib.suppress(ProviderError):
                            dst.storage.delete(volume)
            raise
    src.forget_samples(name)
    for volume in (overlay, seed):
        try:
            src.storage.delete(volume)
        except ProviderError as exc:  # the move itself succeeded: a left-over volume is only logged
            log.warning("moved %s but could not delete %s on %s: %s", name, volume, src.host, exc)
    result = replace(
        result_from(completed_stats(dst.conn, name), name, src.host, dst.host, wall, last),
        overlay_bytes=overlay_bytes,
    )
    log.info(
        "migrated %s from %s to %s in %.2f s (libvirt: %s ms total, %s ms downtime)",
        name,
        src.host,
        dst.host,
        wall,
        result.total_ms,
        result.downtime_ms,
    )
    return result


def _landed(name: str, src: HostProvider, dst: HostProvider) -> bool:
    """True when the guest is running on the destination and gone from the source."""
    try:
        return dst.has_domain(name) and not src.has_domain(name)
    except ProviderError:
        return False
