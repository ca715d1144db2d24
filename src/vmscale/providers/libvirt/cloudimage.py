"""A small Debian cloud image with cloud-init, built from Debian's packages only (``boot = "disk"``).

Real deployments boot their own qcow2 cloud image and configure it with cloud-init user-data.
vmscale must test that path end to end, on a machine that reaches Debian's package mirror but not
cloud.debian.org, so it builds such an image itself::

    debootstrap --variant=minbase  + linux-image-cloud-amd64, cloud-init, systemd, iproute2
    -> partition 1: FAT, syslinux, the image's own kernel and a small initramfs (MBR boot, BIOS)
    -> partition 2: ext4 root (labelled vmscale-cloud), made with ``mkfs.ext4 -d``
    -> cloud-<hash>.qcow2, cloud.qcow2 (a symlink to it: what ``cloud_image`` names) and
       manifest.json in the output folder (default /var/lib/vmscale/cloud-image)

Nothing is mounted and no loop device is used (``mkfs -d``, mtools via ``syslinux --install`` on the
FAT image, ``sfdisk`` and ``dd`` on a plain file), so the build also runs in unprivileged-mount
containers. Like the lean image it is cached by the hash of its inputs; the debootstrapped tree is
cached apart (keyed on suite, mirror and packages), so changing a config file below rebuilds in
seconds.

Choices for a short boot under TCG (software emulation, ~14x slower than the host), each measured
(BENCHMARKS.md, "cloud image boot"):

* cloud-init looks only for NoCloud (no probing of EC2/GCE/... metadata addresses that would time out);
* the initramfs holds only the virtio modules it needs (``MODULES=list``) and is lz4-compressed;
* no SSH server (host keys would be generated at first boot, seconds under TCG), no e2scrub, apt
  or fstrim timers, no fsck of the freshly made root, and only the cloud-init modules it can use;
* the kernel command line skips probing hardware the guest does not have (as the lean image does).

The image is a test fixture and a template: its kernel lives on the FAT partition, so a kernel
upgrade inside a running guest does not change what boots.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt.image import (
    ImageBuildError,
    Progress,
    build_lock,
    cached_rootfs,
    default_mirror,
    inputs_hash,
    require_root,
    run_step,
    sha256_hex,
    unchanged,
)

CLOUD_BUILDER_VERSION = "1"
DEFAULT_CLOUD_IMAGE_DIR = Path("/var/lib/vmscale/cloud-image")
# python3-cffi-backend: debootstrap does not resolve the virtual package python3-cryptography needs.
CLOUD_PACKAGES: tuple[str, ...] = (
    "linux-image-cloud-amd64", "cloud-init", "systemd-sysv", "iproute2", "netbase", "lz4",
    "python3-cffi-backend",
)  # fmt: skip
ROOT_LABEL = "vmscale-cloud"
BOOT_MB = 64
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
STEPS: tuple[str, ...] = ("debootstrap", "configure", "initramfs", "filesystems", "disk", "qcow2", "manifest")
KEEP_OLDER = 1
CURRENT_LINK = "cloud.qcow2"

KERNEL_ARGS = (
    f"root=LABEL={ROOT_LABEL} ro console=ttyS0,115200 quiet loglevel=3 mitigations=off tsc=reliable"
    " no_timer_check 8250.nr_uarts=1 i8042.noaux i8042.nokbd i8042.nopnp cryptomgr.notests"
)
SYSLINUX_CFG = f"""DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND {KERNEL_ARGS}
"""
# Files written into the root (path -> text). Part of the content hash.
ROOT_FILES: dict[str, str] = {
    # fsck pass 0: a file system made by this build is clean, and fsck costs seconds under TCG.
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 rw,noatime,errors=remount-ro 0 0\n",
    "etc/hostname": "localhost\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    "etc/cloud/cloud.cfg.d/90-vmscale.cfg": """# vmscale: NoCloud only (seed ISO "cidata"); networkd.
datasource_list: [ NoCloud, None ]
system_info:
  network:
    renderers: [ networkd ]
# The stock module lists minus what this image cannot use (no sshd, rsyslog, snap, locales,
# grub, byobu, puppet/chef/salt...): every module is an import, and imports are slow under TCG.
cloud_init_modules: [ migrator, seed_random, bootcmd, write-files, growpart, resizefs, disk_setup,
  mounts, set_hostname, update_hostname, update_etc_hosts, ca-certs, users-groups ]
cloud_config_modules: [ set-passwords, apt-configure, ntp, timezone, runcmd ]
cloud_final_modules: [ package-update-upgrade-install, write-files-deferred, scripts-vendor,
  scripts-per-once, scripts-per-boot, scripts-per-instance, scripts-user, final-message,
  power-state-change ]
""",
    "etc/initramfs-tools/conf.d/vmscale.conf": "MODULES=list\nCOMPRESS=lz4\n",
    "etc/initramfs-tools/modules": "virtio_pci\nvirtio_blk\n",
}
ENABLE_UNITS: tuple[str, ...] = ("systemd-networkd.service",)
# Work that delays the boot or competes with the service for the emulated CPU right after it.
MASK_UNITS: tuple[str, ...] = (
    "e2scrub_reap.service", "e2scrub_all.timer", "getty-static.service", "apt-daily.timer",
    "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "fstrim.timer",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CloudImageManifest:
    hash: str
    inputs: dict[str, str]
    disk: str = ""
    kernel_version: str = ""
    built_at: float = 0.0
    build_seconds: float = 0.0
    reused_rootfs: bool = False
    size_bytes: int = 0
    packages: list[str] = field(default_factory=list)

    def path(self, directory: Path) -> Path:
        return directory / self.disk


def load_cloud_manifest(directory: Path) -> CloudImageManifest:
    """The manifest of a built cloud image, or PermanentProviderError saying how to build one."""
    path = directory / "manifest.json"
    try:
        manifest = CloudImageManifest(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise PermanentProviderError(
            f"no cloud image in {directory}: run `vmscale image build --kind cloud --out {directory}`"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise PermanentProviderError(
            f"unreadable cloud image manifest {path}: {exc}; rebuild with --force"
        ) from exc
    if not manifest.path(directory).is_file():
        raise PermanentProviderError(f"cloud image {manifest.path(directory)} is missing; rebuild")
    return manifest


def compute_inputs(suite: str, mirror: str) -> dict[str, str]:
    units = {"enable": ENABLE_UNITS, "mask": MASK_UNITS}
    files = json.dumps({**ROOT_FILES, "syslinux.cfg": SYSLINUX_CFG, "units": units}, sort_keys=True)
    return {
        "builder": CLOUD_BUILDER_VERSION,
        "suite": suite,
        "mirror": mirror,
        "packages": ",".join(CLOUD_PACKAGES),
        "files": sha256_hex(files.encode())[:16],
    }


def configure_root(root: Path) -> str:
    """Write vmscale's files into the root and enable its units; returns the kernel version."""
    for rel, text in ROOT_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "etc/machine-id").write_text("")  # every instance makes its own at first boot
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for unit in ENABLE_UNITS:
        run_step("configure", ["chroot", str(root), "systemctl", "enable", unit], 60)
    for unit in MASK_UNITS:
        run_step("configure", ["chroot", str(root), "systemctl", "mask", unit], 60)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageBuildError("configure: the root has no kernel (linux-image-cloud-amd64 missing?)")
    return kernels[-1].name.removeprefix("vmlinuz-")


def _boot_partition(root: Path, kernel_version: str, dest: Path, work: Path) -> None:
    """A FAT file system holding syslinux, the kernel and the initramfs (mtools: nothing mounted)."""
    dest.unlink(missing_ok=True)
    run_step("filesystems", ["mkfs.vfat", "-n", "VMSCALEBOOT", "-C", str(dest), str(BOOT_MB * 1024)], 60)
    run_step("filesystems", ["syslinux", "--install", str(dest)], 60)
    (work / "syslinux.cfg").write_text(SYSLINUX_CFG)
    files = {
        "vmlinuz": root / "boot" / f"vmlinuz-{kernel_version}",
        "initrd.img": root / "boot" / f"initrd.img-{kernel_version}",
        "syslinux.cfg": work / "syslinux.cfg",
    }
    for name, src in files.items():
        run_step("filesystems", ["mcopy", "-i", str(dest), str(src), f"::/{name}"], 60)


def _root_partition(root: Path, dest: Path) -> int:
    """An ext4 file system of the root (``mkfs.ext4 -d``); returns its size in MiB."""
    used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    size_mb = max(1024, int(used / 2**20 * 1.4) + 256)
    dest.unlink(missing_ok=True)
    run_step(
        "filesystems",
        ["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-d", str(root), str(dest), f"{size_mb}M"],
        600,
    )
    return size_mb


def _assemble(boot: Path, rootfs: Path, root_mb: int, disk: Path) -> None:
    """MBR disk: syslinux's boot code, partition 1 (FAT, active) and partition 2 (Linux)."""
    start1, start2 = 2048, 2048 + BOOT_MB * 2048  # sectors of 512 bytes, 1 MiB aligned
    total = (start2 + root_mb * 2048) * 512
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as fh:
        fh.truncate(total)
    table = f"label: dos\nstart={start1}, size={BOOT_MB * 2048}, type=c, bootable\nstart={start2}, type=83\n"
    try:
        subprocess.run(
            ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(disk)],
            input=table, check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise ImageBuildError("disk: sfdisk is not installed (apt-get install fdisk)") from exc
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(f"disk: sfdisk failed: {getattr(exc, 'stderr', '') or exc}") from exc
    if not SYSLINUX_MBR.is_file():
        raise ImageBuildError(f"disk: {SYSLINUX_MBR} is missing (apt-get install syslinux-common)")
    for src, offset in ((SYSLINUX_MBR, 0), (boot, start1 * 512), (rootfs, start2 * 512)):
        run_step("disk", ["dd", f"if={src}", f"of={disk}", "bs=1M", "oflag=seek_bytes", f"seek={offset}",
                      "conv=notrunc,sparse", "status=none"], 600)  # fmt: skip


def build_cloud_image(
    out: Path = DEFAULT_CLOUD_IMAGE_DIR,
    *,
    force: bool = False,
    suite: str = "bookworm",
    mirror: str | None = None,
    progress: Progress | None = None,
) -> tuple[CloudImageManifest, bool]:
    """Build (or reuse) the cloud image in ``out``. Returns the manifest and whether it was built."""
    report: Progress = progress or (lambda step, detail: None)
    mirror = mirror or default_mirror()
    inputs = compute_inputs(suite, mirror)
    digest = inputs_hash(inputs)
    with build_lock(out):
        existing = unchanged(load_cloud_manifest, out, digest, force)
        if existing is not None:
            report("manifest", f"unchanged inputs (hash {digest}): reusing {out}")
            _link_current(out, existing.disk)
            return existing, False
        require_root("the cloud image")
        t0 = time.monotonic()
        rootfs, reused = cached_rootfs(out, inputs, suite, mirror, CLOUD_PACKAGES, force=force, report=report)
        work = out / ".build"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        root = work / "root"
        report("configure", "NoCloud only, networkd, machine-id per instance")
        run_step("configure", ["cp", "-a", "--reflink=auto", str(rootfs), str(root)], 600)
        kernel_version = configure_root(root)
        report("initramfs", f"virtio modules only, lz4 ({kernel_version})")
        run_step("initramfs", ["chroot", str(root), "update-initramfs", "-u", "-k", kernel_version], 600)
        report("filesystems", "FAT boot partition (syslinux) and ext4 root")
        _boot_partition(root, kernel_version, work / "boot.img", work)
        root_mb = _root_partition(root, work / "root.img")
        report("disk", "MBR, two partitions")
        _assemble(work / "boot.img", work / "root.img", root_mb, work / "disk.raw")
        report("qcow2", "qemu-img convert")
        disk_name = f"cloud-{digest}.qcow2"
        run_step(
            "qcow2",
            ["qemu-img", "convert", "-O", "qcow2", str(work / "disk.raw"), str(work / disk_name)],
            600,
        )
        manifest = CloudImageManifest(
            hash=digest,
            inputs=inputs,
            disk=disk_name,
            kernel_version=kernel_version,
            built_at=time.time(),
            build_seconds=round(time.monotonic() - t0, 1),
            reused_rootfs=reused,
            size_bytes=(work / disk_name).stat().st_size,
            packages=list(CLOUD_PACKAGES),
        )
        report("manifest", "writing manifest.json")
        (work / disk_name).chmod(0o644)
        os.replace(work / disk_name, out / disk_name)  # named by hash: overlays keep their backing file
        _link_current(out, disk_name)
        partial = out / "manifest.json.partial"
        partial.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        partial.replace(out / "manifest.json")
        shutil.rmtree(work, ignore_errors=True)
        _prune(out, disk_name, report)
        return manifest, True


def _link_current(out: Path, disk_name: str) -> None:
    """``cloud.qcow2`` -> the current image, for configs (``cloud_image``); the provider resolves it
    before making an overlay, so a rebuild never changes what a running VM's overlay reads."""
    link = out / CURRENT_LINK
    if link.is_symlink() and os.readlink(link) == disk_name:
        return
    tmp = out / f"{CURRENT_LINK}.partial"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(disk_name)
    tmp.replace(link)


def _prune(out: Path, current: str, report: Progress, keep: int = KEEP_OLDER) -> None:
    """Delete all but the ``keep`` most recent previous images (running VMs keep theirs open)."""
    older = sorted(
        (p for p in out.glob("cloud-*.qcow2") if p.name != current),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in older[keep:]:
        path.unlink(missing_ok=True)
        report("manifest", f"pruned {path.name}")
