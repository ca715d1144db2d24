"""The pure parts of live migration: which disks are copied, progress and libvirt's final figures."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.test_libvirt_xml import SPEC
from vmscale.hosts.moves import _size
from vmscale.providers.libvirt.migrate import disks_to_copy, progress_from, result_from
from vmscale.providers.libvirt.xml import build_domain_xml


def test_only_the_writable_disk_is_copied_not_the_read_only_seed() -> None:
    with_seed = replace(SPEC, boot="disk", kernel="", initrd="", seed_iso="/pool/web-2.iso")
    assert disks_to_copy(build_domain_xml(with_seed)) == ["vda"]
    assert disks_to_copy(build_domain_xml(SPEC)) == ["vda"]


def test_size_and_boot_files_are_read_from_the_domain() -> None:
    assert _size(build_domain_xml(SPEC)) == (2, 768, ["vmlinuz", "initrd.img"], False)
    with_seed = replace(SPEC, boot="disk", kernel="", initrd="", seed_iso="/pool/web-2.iso")
    assert _size(build_domain_xml(with_seed)) == (2, 768, [], True)


def test_progress_counts_what_is_known_so_far() -> None:
    p = progress_from(
        {"memory_total": 300, "memory_processed": 100, "disk_total": 100, "disk_processed": 100},
        "w",
        "h1",
        "h2",
        1.5,
    )
    assert p.fraction == 0.5 and p.elapsed_s == 1.5
    assert progress_from({"type": 2}, "w", "h1", "h2", 0.1).fraction is None


def test_result_takes_libvirts_figures_and_the_disk_copy_from_the_last_progress() -> None:
    completed = {"time_elapsed": 1879, "downtime": 102, "memory_processed": 138962864, "disk_processed": 0}
    last = progress_from(
        {
            "memory_total": 269230080,
            "memory_processed": 44469291,
            "disk_total": 15400960,
            "disk_processed": 15400960,
        },
        "w",
        "h1",
        "h2",
        1.0,
    )
    result = result_from(completed, "w", "h1", "h2", 3.12, last)
    assert (result.total_ms, result.downtime_ms, result.memory_bytes, result.disk_bytes) == (
        1879,
        102,
        138962864,
        15400960,
    )
    assert result.details() == {
        "migrated_from": "h1",
        "migration_wall_s": "3.120",
        "migration_total_ms": "1879",
        "migration_downtime_ms": "102",
        "migration_memory_bytes": "138962864",
        "migration_disk_bytes": "15400960",
    }
    # memory not moving yet when last seen: only what the disk phase had sent
    early = replace(last, memory_processed=0, disk_processed=4096)
    assert result_from(completed, "w", "h1", "h2", 3.0, early).disk_bytes == 4096
    assert result_from({}, "w", "h1", "h2", 3.0).details() == {
        "migrated_from": "h1",
        "migration_wall_s": "3.000",
    }
