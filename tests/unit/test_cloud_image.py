"""The cloud image's pieces without debootstrap: the boot partition, the disk layout, the cache key,
the manifest (the whole build and a real boot are in tests/e2e/test_libvirt_cloud.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt import cloudimage


def fake_root(tmp_path: Path, version: str = "6.1.0-99-cloud-amd64") -> Path:
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{version}").write_bytes(b"kernel" * 1000)
    (root / "boot" / f"initrd.img-{version}").write_bytes(b"initrd" * 1000)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text("ID=debian\n")
    return root


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def test_disk_has_syslinux_mbr_a_bootable_fat_partition_and_the_root(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    boot, rootfs, disk = tmp_path / "boot.img", tmp_path / "root.img", tmp_path / "disk.raw"
    cloudimage._boot_partition(root, "6.1.0-99-cloud-amd64", boot, tmp_path)
    root_mb = cloudimage._root_partition(root, rootfs)
    cloudimage._assemble(boot, rootfs, root_mb, disk)

    table = json.loads(run("sfdisk", "--json", str(disk)))["partitiontable"]
    p1, p2 = table["partitions"]
    assert table["label"] == "dos"
    assert (p1["start"], p1["size"], p1["type"], p1.get("bootable")) == (2048, 64 * 2048, "c", True)
    assert (p2["start"], p2["type"]) == (2048 + 64 * 2048, "83")
    assert disk.read_bytes()[:440] == cloudimage.SYSLINUX_MBR.read_bytes()[:440], "syslinux's boot code"

    fat = f"{disk}@@{p1['start'] * 512}"
    assert run("mtype", "-i", fat, "::/syslinux.cfg") == cloudimage.SYSLINUX_CFG
    listing = run("mdir", "-a", "-b", "-i", fat, "::/")  # -a: ldlinux.sys is hidden
    for name in ("LDLINUX.SYS", "LDLINUX.C32", "VMLINUZ", "INITRD.IMG"):
        assert name in listing.upper(), f"{name} missing from the boot partition: {listing}"
    assert run("mtype", "-i", fat, "::/vmlinuz") == "kernel" * 1000

    label = run("blkid", "-o", "value", "-s", "LABEL", "-p", "-O", str(p2["start"] * 512), str(disk))
    assert label.strip() == cloudimage.ROOT_LABEL, "fstab and the kernel find the root by this label"


def test_kernel_command_line_names_the_root_label_and_the_serial_console() -> None:
    assert f"root=LABEL={cloudimage.ROOT_LABEL}" in cloudimage.KERNEL_ARGS
    assert "console=ttyS0" in cloudimage.KERNEL_ARGS
    assert f"APPEND {cloudimage.KERNEL_ARGS}" in cloudimage.SYSLINUX_CFG
    assert f"LABEL={cloudimage.ROOT_LABEL} /" in cloudimage.ROOT_FILES["etc/fstab"]


def test_cloud_init_looks_for_nocloud_only() -> None:
    import yaml

    cfg = yaml.safe_load(cloudimage.ROOT_FILES["etc/cloud/cloud.cfg.d/90-vmscale.cfg"])
    assert cfg["datasource_list"] == ["NoCloud", "None"]
    assert "runcmd" in cfg["cloud_config_modules"] and "scripts-user" in cfg["cloud_final_modules"]
    assert "write-files" in cfg["cloud_init_modules"]


def test_cache_key_follows_every_input(monkeypatch: pytest.MonkeyPatch) -> None:
    base = cloudimage.compute_inputs("bookworm", "http://deb.debian.org/debian")
    assert base == cloudimage.compute_inputs("bookworm", "http://deb.debian.org/debian")
    assert base != cloudimage.compute_inputs("trixie", "http://deb.debian.org/debian")
    monkeypatch.setitem(cloudimage.ROOT_FILES, "etc/hostname", "changed\n")
    assert cloudimage.compute_inputs("bookworm", "http://deb.debian.org/debian")["files"] != base["files"]


def test_manifest_errors_say_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(PermanentProviderError, match="vmscale image build --kind cloud"):
        cloudimage.load_cloud_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"hash": "ab", "inputs": {}, "disk": "cloud-ab.qcow2"})
    )
    with pytest.raises(PermanentProviderError, match="is missing; rebuild"):
        cloudimage.load_cloud_manifest(tmp_path)
    (tmp_path / "cloud-ab.qcow2").write_bytes(b"QFI\xfb")
    assert cloudimage.load_cloud_manifest(tmp_path).path(tmp_path) == tmp_path / "cloud-ab.qcow2"


def test_current_link_follows_the_newest_build(tmp_path: Path) -> None:
    cloudimage._link_current(tmp_path, "cloud-aa.qcow2")
    cloudimage._link_current(tmp_path, "cloud-bb.qcow2")
    assert (tmp_path / cloudimage.CURRENT_LINK).readlink() == Path("cloud-bb.qcow2")
