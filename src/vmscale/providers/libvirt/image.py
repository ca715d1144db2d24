"""Building the guest image: debootstrap + the backend + a lean boot path, cached by content hash.

Output folder (default ``/var/lib/vmscale/image``; it must be readable by the ``libvirt-qemu`` user, which
is why it is not under ``~``)::

    base.qcow2     ext4 root file system (Debian minbase + python3-fastapi + python3-uvicorn + busybox-static)
    vmlinuz        the host's cloud kernel, copied (libvirt relabels it; /boot stays untouched)
    initrd.img     tiny uncompressed initramfs made here (see ``guest.py``)
    manifest.json  content hash of every input; a rebuild with the same hash reuses all of the above

The debootstrapped tree is cached separately (``.cache/rootfs-<hash>``, keyed on suite, mirror and
packages only), so a changed backend re-does only the last, fast steps. Packages come only from the
host's configured Debian mirror.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import vmscale.workload
from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt import guest

BUILDER_VERSION = "1"
DEFAULT_IMAGE_DIR = Path("/var/lib/vmscale/image")
DEFAULT_SUITE = "bookworm"
PACKAGES: tuple[str, ...] = ("python3-fastapi", "python3-uvicorn", "busybox-static")
WORKLOAD_FILES: tuple[str, ...] = ("__init__.py", "fib.py", "pool.py", "identity.py", "backend.py")
TRIM_DIRS: tuple[str, ...] = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
)
KEEP_OLDER = 2  # previous image generations kept for VMs still using them
STEPS: tuple[str, ...] = ("debootstrap", "backend", "initrd", "filesystem", "qcow2", "manifest")

Progress = Callable[[str, str], None]  # (step, detail)
M = TypeVar("M")


class ImageBuildError(PermanentProviderError):
    """The image could not be built; the message says which step and why."""


@dataclass(frozen=True, slots=True)
class ImageManifest:
    hash: str
    inputs: dict[str, str]
    disk: str = "base.qcow2"
    kernel: str = "vmlinuz"
    initrd: str = "initrd.img"
    kernel_version: str = ""
    built_at: float = 0.0
    build_seconds: float = 0.0
    reused_rootfs: bool = False
    size_bytes: int = 0
    packages: list[str] = field(default_factory=list)

    def path(self, directory: Path, which: str) -> Path:
        return directory / str(getattr(self, which))


def load_manifest(directory: Path) -> ImageManifest:
    """The manifest of a built image, or PermanentProviderError saying how to build one."""
    path = directory / "manifest.json"
    try:
        data = json.loads(path.read_text())
        manifest = ImageManifest(**data)
    except FileNotFoundError:
        raise PermanentProviderError(
            f"no guest image in {directory}: run `vmscale image build --out {directory}`"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise PermanentProviderError(
            f"unreadable image manifest {path}: {exc}; rebuild with --force"
        ) from exc
    for which in ("disk", "kernel", "initrd"):
        if not manifest.path(directory, which).is_file():
            raise PermanentProviderError(f"image file {manifest.path(directory, which)} is missing; rebuild")
    return manifest


def default_mirror(sources: list[Path] | None = None) -> str:
    """The first Debian (not -security) mirror the host's apt is configured with."""
    if sources is None:
        sources = [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]
    for src in sources:
        try:
            text = src.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if not words or words[0] not in ("deb", "URIs:"):
                continue  # comments and other fields (a commented snapshot URL is not the mirror)
            for word in words[1:]:
                if word.startswith("http") and "/debian" in word and "security" not in word:
                    return word.rstrip("/")
    return "http://deb.debian.org/debian"


def find_kernel(boot: Path = Path("/boot")) -> tuple[Path, str]:
    """The newest ``vmlinuz-*-cloud-amd64`` (cloud kernels boot fastest: few drivers to probe)."""
    kernels = sorted(boot.glob("vmlinuz-*-cloud-amd64"))
    if not kernels:
        raise ImageBuildError(f"no cloud kernel in {boot}: apt-get install linux-image-cloud-amd64")
    kernel = kernels[-1]
    return kernel, kernel.name.removeprefix("vmlinuz-")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def workload_sources() -> dict[str, bytes]:
    src = Path(vmscale.workload.__file__).parent
    return {name: (src / name).read_bytes() for name in WORKLOAD_FILES if (src / name).is_file()}


def compute_inputs(suite: str, mirror: str, kernel: Path, kernel_version: str) -> dict[str, str]:
    """Everything the image depends on, each as a short hash or value (goes into the manifest)."""
    modules = Path("/lib/modules") / kernel_version
    mod_hash = hashlib.sha256()
    for rel in guest.INITRD_MODULES:
        p = modules / rel
        mod_hash.update(rel.encode() + (p.read_bytes() if p.is_file() else b"missing"))
    guest_text = guest.INITRD_INIT + json.dumps(guest.ROOT_FILES, sort_keys=True)
    work = workload_sources()
    return {
        "builder": BUILDER_VERSION,
        "suite": suite,
        "mirror": mirror,
        "packages": ",".join(PACKAGES),
        "kernel": sha256_hex(kernel.read_bytes())[:16],
        "modules": mod_hash.hexdigest()[:16],
        "guest_scripts": sha256_hex(guest_text.encode())[:16],
        "workload": sha256_hex(b"".join(k.encode() + v for k, v in sorted(work.items())))[:16],
    }


def inputs_hash(inputs: dict[str, str], keys: tuple[str, ...] | None = None) -> str:
    chosen = {k: v for k, v in inputs.items() if keys is None or k in keys}
    return sha256_hex(json.dumps(chosen, sort_keys=True).encode())[:16]


def run_step(step: str, argv: list[str], timeout_s: float) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError as exc:
        raise ImageBuildError(f"{step}: {argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{step}: {argv[0]} did not finish within {timeout_s:.0f} s") from exc
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stderr or exc.stdout or "").strip().splitlines()[-15:])
        raise ImageBuildError(
            f"{step}: `{' '.join(argv[:3])} ...` failed (exit {exc.returncode}):\n{tail}"
        ) from exc


def _debootstrap(
    dest: Path, suite: str, mirror: str, debs: Path, packages: tuple[str, ...] = PACKAGES
) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    debs.mkdir(parents=True, exist_ok=True)
    argv = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}", f"--include={','.join(packages)}"]
    run_step("debootstrap", [*argv, suite, str(tmp), mirror], timeout_s=1200)
    for rel in TRIM_DIRS:
        shutil.rmtree(tmp / rel, ignore_errors=True)
        (tmp / rel).mkdir(parents=True, exist_ok=True)
    tmp.rename(dest)


def _install_backend(root: Path) -> None:
    pkg = root / "opt/vmscale/vmscale/workload"
    shutil.rmtree(pkg, ignore_errors=True)
    pkg.mkdir(parents=True)
    sources = workload_sources()
    if "backend.py" not in sources:
        raise ImageBuildError("the workload backend (vmscale/workload/backend.py) is missing")
    for name, data in sources.items():
        (pkg / name).write_bytes(data)
    guest.install_root_files(root)
    # Byte-compile with the guest's own python so the first import in the VM is not a compile.
    run_step("backend", ["chroot", str(root), "python3", "-m", "compileall", "-q", "/opt/vmscale"], 300)


def _make_filesystem(root: Path, raw: Path) -> None:
    used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    size_mb = max(1024, int(used / 2**20 * 1.5) + 512)
    raw.unlink(missing_ok=True)
    run_step(
        "filesystem",
        ["mkfs.ext4", "-q", "-F", "-L", "vmscale-root", "-d", str(root), str(raw), f"{size_mb}M"],
        600,
    )


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """One build per output folder at a time: a second caller waits, then finds the result."""
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    with (out / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def unchanged(load: Callable[[Path], M], out: Path, digest: str, force: bool) -> M | None:
    """The manifest already in ``out`` when it was built from the same inputs (and not forced)."""
    if force:
        return None
    try:
        existing = load(out)
    except PermanentProviderError:
        return None
    return existing if getattr(existing, "hash", None) == digest else None


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(f"building {what} needs root (debootstrap, chroot): run it with sudo")


def cached_rootfs(
    out: Path,
    inputs: dict[str, str],
    suite: str,
    mirror: str,
    packages: tuple[str, ...],
    *,
    force: bool,
    report: Progress,
) -> tuple[Path, bool]:
    """The debootstrapped tree for these suite, mirror and packages: made once, then reused (the
    slow step; everything after it is seconds). Returns it and whether it was reused."""
    cache = out / ".cache"
    rootfs = cache / f"rootfs-{inputs_hash(inputs, ('builder', 'suite', 'mirror', 'packages'))}"
    reused = rootfs.is_dir() and not force
    if reused:
        report("debootstrap", f"reusing {rootfs.name}")
    else:
        shutil.rmtree(rootfs, ignore_errors=True)
        report("debootstrap", f"{suite} from {mirror} (+{', '.join(packages)})")
        _debootstrap(rootfs, suite, mirror, cache / "debs", packages)
    return rootfs, reused


def build_image(
    out: Path = DEFAULT_IMAGE_DIR,
    *,
    force: bool = False,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    progress: Progress | None = None,
) -> tuple[ImageManifest, bool]:
    """Build (or reuse) the image in ``out``. Returns the manifest and whether it was (re)built."""
    report: Progress = progress or (lambda step, detail: None)
    mirror = mirror or default_mirror()
    kernel, kernel_version = find_kernel()
    inputs = compute_inputs(suite, mirror, kernel, kernel_version)
    digest = inputs_hash(inputs)
    with build_lock(out):
        existing = unchanged(load_manifest, out, digest, force)
        if existing is not None:
            report("manifest", f"unchanged inputs (hash {digest}): reusing {out}")
            return existing, False
        require_root("the image")
        t0 = time.monotonic()
        rootfs, reused = cached_rootfs(out, inputs, suite, mirror, PACKAGES, force=force, report=report)
        work = out / ".build"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        root = work / "root"
        report("backend", "copying the root and installing vmscale.workload + boot scripts")
        run_step("backend", ["cp", "-a", "--reflink=auto", str(rootfs), str(root)], 300)
        _install_backend(root)
        report("initrd", f"busybox + {len(guest.INITRD_MODULES)} virtio modules of {kernel_version}")
        guest.write_initrd(work / "initrd.img", root / "bin/busybox", Path("/lib/modules") / kernel_version)
        shutil.copyfile(kernel, work / "vmlinuz")
        report("filesystem", "mkfs.ext4 -d")
        _make_filesystem(root, work / "root.raw")
        report("qcow2", "qemu-img convert")
        run_step(
            "qcow2",
            ["qemu-img", "convert", "-O", "qcow2", str(work / "root.raw"), str(work / "base.qcow2")],
            600,
        )
        report("manifest", "writing manifest.json")
        manifest = ImageManifest(
            hash=digest,
            inputs=inputs,
            kernel_version=kernel_version,
            built_at=time.time(),
            build_seconds=round(time.monotonic() - t0, 1),
            reused_rootfs=reused,
            size_bytes=(work / "base.qcow2").stat().st_size,
            packages=list(PACKAGES),
            disk=f"base-{digest}.qcow2",
            kernel=f"vmlinuz-{digest}",
            initrd=f"initrd-{digest}.img",
        )
        # Files are named by hash and never overwritten: overlays of running VMs keep their backing
        # file (and a stopped domain its kernel) when the image is rebuilt.
        for built_name, final in (("base.qcow2", manifest.disk), ("vmlinuz", manifest.kernel)):
            (work / built_name).chmod(0o644)
            os.replace(work / built_name, out / final)
        (work / "initrd.img").chmod(0o644)
        os.replace(work / "initrd.img", out / manifest.initrd)
        tmp_manifest = out / "manifest.json.partial"
        tmp_manifest.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        tmp_manifest.replace(out / "manifest.json")
        shutil.rmtree(work, ignore_errors=True)
        _prune(out, digest, report)
        return manifest, True


def _prune(out: Path, current: str, report: Progress, keep: int = KEEP_OLDER) -> None:
    """Delete image generations older than the ``keep`` most recent previous ones.

    Running VMs are safe (QEMU holds its backing file open; an unlinked file lives on until closed);
    only a long-stopped or saved domain of a pruned generation could no longer start, and the
    controller replaces an instance that fails to launch.
    """
    bases = sorted(out.glob("base-*.qcow2"), key=lambda p: p.stat().st_mtime, reverse=True)
    old = [p.name.removeprefix("base-").removesuffix(".qcow2") for p in bases]
    old = [h for h in old if h != current]
    for digest in old[keep:]:
        for name in (f"base-{digest}.qcow2", f"vmlinuz-{digest}", f"initrd-{digest}.img"):
            (out / name).unlink(missing_ok=True)
        report("manifest", f"pruned image generation {digest}")
