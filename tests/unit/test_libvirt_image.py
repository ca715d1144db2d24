"""The lean boot path's pieces: the initrd, the guest scripts, the manifest and cache key."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt import guest, image


def kernel_modules() -> Path:
    _kernel, version = image.find_kernel()
    return Path("/lib/modules") / version


def test_initrd_is_a_newc_archive_with_init_busybox_and_modules(tmp_path: Path) -> None:
    busybox = shutil.which("busybox") or "/bin/true"  # any executable works: only the archive is checked
    dest = tmp_path / "initrd.img"
    names = guest.write_initrd(dest, Path(busybox), kernel_modules())
    listing = subprocess.run(
        ["cpio", "-it", "--quiet"], input=dest.read_bytes(), capture_output=True, check=True, timeout=30
    ).stdout.decode()
    entries = listing.split()
    assert {"init", "bin/busybox", "modules.order"} <= set(entries)
    assert [e.removeprefix("modules/") for e in entries if e.startswith("modules/")] == names
    extract = tmp_path / "x"
    extract.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=dest.read_bytes(), cwd=extract, check=True, timeout=30)
    assert (extract / "init").read_text() == guest.INITRD_INIT
    assert (extract / "init").stat().st_mode & 0o111


def test_initrd_modules_are_loaded_after_their_dependencies() -> None:
    modules = kernel_modules()
    deps: dict[str, list[str]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    order = list(guest.INITRD_MODULES)
    for position, mod in enumerate(order):
        assert mod in deps, f"{mod} is not a module of this kernel"
        for dep in deps[mod]:
            assert dep in order[:position], f"{mod} needs {dep} loaded before it"


def test_root_files_and_init_symlink_are_installed(tmp_path: Path) -> None:
    guest.install_root_files(tmp_path)
    assert (tmp_path / "etc/vmscale/bin/init").readlink() == Path("/bin/busybox")
    assert "::respawn:/etc/vmscale/backend.sh" in (tmp_path / "etc/inittab").read_text()
    assert (tmp_path / "etc/acpi/PWRF/00000080").stat().st_mode & 0o111
    guest.install_root_files(tmp_path)  # idempotent (the symlink is replaced, not an error)


@pytest.mark.parametrize(
    "script", ["INITRD_INIT", "RC_SH", "BACKEND_SH", "STOP_SH", "UDHCPC_SH", "HOTPLUG_SH"]
)
def test_guest_scripts_are_valid_shell(script: str) -> None:
    subprocess.run(["sh", "-n"], input=getattr(guest, script), text=True, check=True, timeout=10)


def test_backend_script_reads_options_from_the_kernel_command_line(tmp_path: Path) -> None:
    out = _backend_argv(
        tmp_path,
        "console=ttyS0 vmscale.name=web-2 vmscale.workers=3 vmscale.port=8000 vmscale.fib_max_n=30\n",
    )
    assert out == [
        "-m", "vmscale.workload.backend", "--host", "0.0.0.0", "--port", "8000",
        "--name", "web-2", "--workers", "3", "--pid-file", "/run/vmscale-backend.pid", "--fib-max-n", "30",
    ]  # fmt: skip


def _backend_argv(tmp_path: Path, cmdline_text: str) -> list[str]:
    """The guest's backend.sh run against a fake /proc/cmdline: the backend's argv it would exec."""
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(cmdline_text)
    script = (
        guest.BACKEND_SH.replace("/proc/cmdline", str(cmdline))
        .replace("bb=/bin/busybox", "bb=")
        .replace("cd /opt/vmscale\n", "")
        .replace("echo ", ": ")
        .replace("exec /usr/bin/python3", "echo")
    )
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()


def test_backend_follows_the_cpus_unless_told_a_count(tmp_path: Path) -> None:
    argv = _backend_argv(tmp_path, "console=ttyS0 vmscale.name=web-2 vmscale.port=8000\n")
    assert argv[argv.index("--workers") + 1] == "auto"


def test_a_golden_backend_waits_for_its_pushed_identity(tmp_path: Path) -> None:
    argv = _backend_argv(
        tmp_path, "vmscale.name=g vmscale.workers=auto vmscale.identity=push vmscale.identity_token=abc123\n"
    )
    assert argv[-5:] == ["--identity", "push", "--identity-token", "abc123", "--set-system"]


@pytest.mark.parametrize(
    ("action", "online_before", "online_after"),
    [
        pytest.param("add", "0", "1", id="a-hot-added-cpu-is-onlined"),
        pytest.param("offline", "0", "0", id="an-offlined-cpu-stays-offline"),
    ],
)
def test_hotplug_hook_onlines_new_cpus_and_tells_the_backend(
    tmp_path: Path, action: str, online_before: str, online_after: str
) -> None:
    sysfs = tmp_path / "sys"
    cpu = sysfs / "devices/system/cpu/cpu1"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text(online_before)
    pidfile = tmp_path / "backend.pid"
    # SIGHUP's default action in the "backend", whatever the test runner inherited (nohup ignores it).
    sleeper = subprocess.Popen(
        ["sleep", "30"], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL)
    )
    try:
        pidfile.write_text(f"{sleeper.pid}\n")
        script = (
            guest.HOTPLUG_SH.replace('"/sys$DEVPATH', f'"{sysfs}$DEVPATH')
            .replace("/run/vmscale-backend.pid", str(pidfile))
            .replace("/bin/busybox ", "")
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "SUBSYSTEM": "cpu",
            "ACTION": action,
            "DEVPATH": "/devices/system/cpu/cpu1",
        }
        out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        assert (cpu / "online").read_text().strip() == online_after
        assert f"cpu1 {action} at" in out.stdout
        assert sleeper.wait(timeout=10) == -1  # SIGHUP (1) reached the "backend"
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(timeout=10)


def test_mirror_comes_from_the_apt_sources_not_from_comments(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert image.default_mirror([deb822]) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text("deb [arch=amd64] http://ftp.example/debian/ bookworm main\n")
    assert image.default_mirror([tmp_path / "absent", legacy]) == "http://ftp.example/debian"


def test_changed_backend_source_changes_the_image_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, version = image.find_kernel()
    before = image.compute_inputs("bookworm", "http://m/debian", kernel, version)
    monkeypatch.setattr(image, "workload_sources", lambda: {"backend.py": b"changed"})
    after = image.compute_inputs("bookworm", "http://m/debian", kernel, version)
    assert before["workload"] != after["workload"]
    assert {k for k in before if before[k] != after[k]} == {"workload"}


def test_missing_or_broken_image_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(PermanentProviderError, match="vmscale image build"):
        image.load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"hash": "abc", "inputs": {}}))
    with pytest.raises(PermanentProviderError, match="missing"):
        image.load_manifest(tmp_path)


def test_rebuilds_keep_the_previous_generations_and_prune_older_ones(tmp_path: Path) -> None:
    for age, digest in enumerate(["d0", "d1", "d2", "d3"]):  # d0 newest ... d3 oldest
        for name in (f"base-{digest}.qcow2", f"vmlinuz-{digest}", f"initrd-{digest}.img"):
            (tmp_path / name).write_bytes(b"")
            os.utime(tmp_path / name, (1000 - age, 1000 - age))
    notes: list[str] = []
    image._prune(tmp_path, "d0", lambda step, detail: notes.append(detail), keep=2)
    kept = sorted(p.name for p in tmp_path.glob("base-*"))
    assert kept == ["base-d0.qcow2", "base-d1.qcow2", "base-d2.qcow2"]
    assert not (tmp_path / "vmlinuz-d3").exists() and not (tmp_path / "initrd-d3.img").exists()
    assert notes == ["pruned image generation d3"]
