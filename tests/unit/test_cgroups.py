"""Cgroup CPU-controller detection and quota files, over fake sysfs trees built in tmp_path.

The mount table is a parameter of detection, so each test writes a ``mounts`` file whose mount
points are directories under tmp_path laid out like the kernel would show them.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from vmscale.config.process import ProcessProviderConfig
from vmscale.errors import PermanentProviderError
from vmscale.providers import cgroups
from vmscale.providers.cgroups import CgroupCpu, detect_cgroup_cpu, pids_in, remove_cgroup
from vmscale.providers.process import ProcessProvider


def _mounts(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "mounts"
    path.write_text("".join(row + "\n" for row in rows))
    return path


def _v1_cpu(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cgroup.procs").write_text("1\n")
    return root


def _v2(root: Path, controllers: str) -> Path:
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("\n")
    return root


def test_hybrid_host_without_v2_cpu_uses_v1(tmp_path: Path) -> None:
    """Like Debian hybrid hosts: the unified tree has no cpu controller, v1 cpu is mounted."""
    cpu = _v1_cpu(tmp_path / "cgroup" / "cpu")
    unified = _v2(tmp_path / "cgroup" / "unified", "hugetlb")
    mounts = _mounts(
        tmp_path,
        f"tmpfs {tmp_path / 'cgroup'} tmpfs rw,relatime,mode=755 0 0",
        f"cgroup {cpu} cgroup rw,relatime,cpu 0 0",
        f"cgroup2 {unified} cgroup2 rw,relatime 0 0",
    )
    found, note = detect_cgroup_cpu(mounts)
    assert found == CgroupCpu("v1", cpu)
    assert str(cpu) in note


def test_v1_combined_cpu_cpuacct_mount(tmp_path: Path) -> None:
    cpu = _v1_cpu(tmp_path / "cpu,cpuacct")
    mounts = _mounts(tmp_path, f"cgroup {cpu} cgroup rw,nosuid,cpu,cpuacct 0 0")
    found, _ = detect_cgroup_cpu(mounts)
    assert found is not None and found.version == "v1"


def test_v1_cpuacct_alone_is_not_a_cpu_controller(tmp_path: Path) -> None:
    acct = _v1_cpu(tmp_path / "cpuacct")
    mounts = _mounts(tmp_path, f"cgroup {acct} cgroup rw,cpuacct 0 0")
    found, note = detect_cgroup_cpu(mounts)
    assert found is None
    assert "no cgroup hierarchy" in note


def test_v1_quota_file_and_leaf_layout(tmp_path: Path) -> None:
    cpu = _v1_cpu(tmp_path / "cpu")
    found, _ = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup {cpu} cgroup rw,cpu 0 0"), period_us=50_000)
    assert found is not None
    leaf = found.create("web", "web-1", vcpus=2)
    assert leaf == cpu / "vmscale" / "web" / "web-1"
    assert (leaf / "cpu.cfs_quota_us").read_text() == "100000"
    assert (leaf / "cpu.cfs_period_us").read_text() == "50000"
    assert found.read_quota(leaf) == (100_000, 50_000)
    assert found.mechanism == "cgroup v1 cpu.cfs_quota_us"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_set_quota_resizes_an_existing_cgroup(tmp_path: Path, version: str) -> None:
    if version == "v1":
        root = _v1_cpu(tmp_path / "cpu")
        mounts = _mounts(tmp_path, f"cgroup {root} cgroup rw,cpu 0 0")
    else:
        root = _v2(tmp_path / "cgroup", "cpu")
        mounts = _mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0")
    found, _ = detect_cgroup_cpu(mounts)
    assert found is not None and found.version == version
    leaf = found.create("web", "web-1", vcpus=1)
    found.set_quota(leaf, 3)
    assert found.read_quota(leaf) == (300_000, 100_000)
    found.set_quota(leaf, 0)  # never below one CPU's worth
    assert found.read_quota(leaf) == (100_000, 100_000)


def test_v1_without_cfs_bandwidth_is_unusable(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    (cpu / "cpu.shares").write_text("1024\n")
    found, note = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup {cpu} cgroup rw,cpu 0 0"))
    assert found is None
    assert "cfs_quota_us" in note


def test_pure_v2_with_cpu_delegates_and_writes_cpu_max(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cgroup", "cpuset cpu io memory pids")
    found, note = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup2 {root} cgroup2 rw,nsdelegate 0 0"))
    assert found == CgroupCpu("v2", root)
    assert "v2" in note
    leaf = found.create("web", "web-2", vcpus=2)
    assert (leaf / "cpu.max").read_text() == "200000 100000"
    # every ancestor must hand the cpu controller down, or cpu.max would not exist in the leaf
    for parent in (root, root / "vmscale", root / "vmscale" / "web"):
        assert (parent / "cgroup.subtree_control").read_text() == "+cpu"
    assert found.read_quota(leaf) == (200_000, 100_000)


def test_v2_subtree_already_delegated_is_left_alone(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cgroup", "cpu memory")
    (root / "cgroup.subtree_control").write_text("cpu memory\n")
    found, _ = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0"))
    assert found is not None
    found.create("web", "web-1", vcpus=1)
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory\n"


def test_v2_unlimited_quota_reads_as_none(tmp_path: Path) -> None:
    leaf = tmp_path / "leaf"
    leaf.mkdir()
    (leaf / "cpu.max").write_text("max 100000\n")
    assert CgroupCpu("v2", tmp_path).read_quota(leaf) is None


def test_v2_preferred_over_v1_when_both_have_cpu(tmp_path: Path) -> None:
    cpu = _v1_cpu(tmp_path / "cpu")
    root = _v2(tmp_path / "unified", "cpu")
    mounts = _mounts(tmp_path, f"cgroup {cpu} cgroup rw,cpu 0 0", f"cgroup2 {root} cgroup2 rw 0 0")
    found, _ = detect_cgroup_cpu(mounts)
    assert found is not None and found.version == "v2"


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    mounts = _mounts(tmp_path, "proc /proc proc rw 0 0", "sysfs /sys sysfs ro 0 0")
    found, note = detect_cgroup_cpu(mounts)
    assert found is None
    assert note == "no cgroup hierarchy is mounted"


def test_v2_without_cpu_and_no_v1_explains_why(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cgroup", "memory pids")
    found, note = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0"))
    assert found is None
    assert f"cgroup v2 at {root} has no cpu controller" in note


def test_escaped_space_in_mount_point(tmp_path: Path) -> None:
    cpu = _v1_cpu(tmp_path / "my cgroups" / "cpu")
    escaped = str(cpu).replace(" ", "\\040")
    found, _ = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup {escaped} cgroup rw,cpu 0 0"))
    assert found is not None and found.mount == cpu


def test_pids_and_removal_of_missing_cgroup(tmp_path: Path) -> None:
    leaf = tmp_path / "leaf"
    leaf.mkdir()
    (leaf / "cgroup.procs").write_text("12\n34\n")
    assert pids_in(leaf) == [12, 34]
    assert pids_in(tmp_path / "missing") == []
    remove_cgroup(tmp_path / "missing", timeout_s=0)  # missing is success


def test_provider_demanding_cgroup_without_one_refuses(tmp_path: Path) -> None:
    mounts = _mounts(tmp_path, "proc /proc proc rw 0 0")
    with pytest.raises(PermanentProviderError, match=r"cpu_limit = 'cgroup'.*no cgroup hierarchy"):
        ProcessProvider(ProcessProviderConfig(cpu_limit="cgroup"), tmp_path / "state", mounts_file=mounts)


def test_provider_says_once_how_cpu_is_limited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vmscale.providers.process")
    none = _mounts(tmp_path, "proc /proc proc rw 0 0")
    auto = ProcessProvider(ProcessProviderConfig(), tmp_path / "a", mounts_file=none)
    assert auto.cgroup is None
    assert auto.describe_cpu_limit().startswith("no cgroup CPU controller available")
    assert "worker count only" in caplog.text

    cpu = _v1_cpu(tmp_path / "cpu")
    v1 = _mounts(tmp_path, f"cgroup {cpu} cgroup rw,cpu 0 0")
    limited = ProcessProvider(ProcessProviderConfig(), tmp_path / "b", mounts_file=v1)
    assert limited.describe_cpu_limit() == "CPU limit: cgroup v1 cpu.cfs_quota_us (1 CPU per instance)"
    workers = ProcessProvider(ProcessProviderConfig(cpu_limit="workers"), tmp_path / "c", mounts_file=v1)
    assert workers.cgroup is None
    assert "worker count only" in workers.describe_cpu_limit()


# ---- instances under vmscale's own cgroup (systemd Delegate=yes owns them) ----------------------

UNIT = "system.slice/vmscale.service"


def _self_cgroup(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "self-cgroup"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_v1_instances_go_under_the_units_own_cpu_cgroup(tmp_path: Path) -> None:
    cpu = _v1_cpu(tmp_path / "cpu,cpuacct")
    (cpu / UNIT).mkdir(parents=True)
    own = _self_cgroup(
        tmp_path, "9:name=systemd:/" + UNIT, "4:memory:/other", "3:cpu,cpuacct:/" + UNIT, "0::/"
    )
    found, note = detect_cgroup_cpu(
        _mounts(tmp_path, f"cgroup {cpu} cgroup rw,cpu,cpuacct 0 0"), self_cgroup=own
    )
    assert found is not None and found.base == cpu / UNIT
    assert found.create("web", "web-1", vcpus=1) == cpu / UNIT / "vmscale" / "web" / "web-1"
    assert f"instances under {cpu / UNIT}" in note


def test_v2_instances_go_under_the_units_own_cgroup(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cgroup", "cpu memory")
    unit = _v2(root / UNIT, "cpu memory")
    own = _self_cgroup(tmp_path, "0::/" + UNIT)
    found, _ = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0"), self_cgroup=own)
    assert found is not None and found.base == unit
    leaf = found.create("web", "web-1", vcpus=2)
    assert leaf == unit / "vmscale" / "web" / "web-1"
    assert (leaf / "cpu.max").read_text() == "200000 100000"
    for parent in (unit, unit / "vmscale", unit / "vmscale" / "web"):
        assert (parent / "cgroup.subtree_control").read_text() == "+cpu"
    assert (root / "cgroup.subtree_control").read_text() == "\n", "above our own cgroup is systemd's"


def test_v2_own_cgroup_with_processes_moves_vmscale_into_a_supervisor_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel refuses (EBUSY) to delegate from a cgroup that holds processes: vmscale steps into
    <own>/supervisor, then delegates; the backends end up beside it, still inside the unit."""
    root = _v2(tmp_path / "cgroup", "cpu")
    unit = _v2(root / UNIT, "cpu")
    own = _self_cgroup(tmp_path, "0::/" + UNIT)
    found, _ = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0"), self_cgroup=own)
    assert found is not None
    real_write = cgroups._write

    def kernel_like_write(path: Path, value: str) -> None:
        moved = (unit / "supervisor" / "cgroup.procs").exists()
        if path == unit / "cgroup.subtree_control" and not moved:
            try:
                raise OSError(errno.EBUSY, "Device or resource busy")
            except OSError as exc:
                raise cgroups.CgroupError(f"cannot write {value!r} to {path}") from exc
        real_write(path, value)

    monkeypatch.setattr(cgroups, "_write", kernel_like_write)
    leaf = found.create("web", "web-1", vcpus=1)
    assert (unit / "supervisor" / "cgroup.procs").read_text() == str(os.getpid())
    assert (unit / "cgroup.subtree_control").read_text() == "+cpu"
    assert leaf == unit / "vmscale" / "web" / "web-1"
    # a later detection in the same process (now in .../supervisor) still uses the unit's cgroup
    moved = _self_cgroup(tmp_path, f"0::/{UNIT}/supervisor")
    again, _ = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0"), self_cgroup=moved)
    assert again is not None and again.base == unit


def test_v2_delegation_refused_for_other_reasons_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _v2(tmp_path / "cgroup", "cpu")
    found, _ = detect_cgroup_cpu(
        _mounts(tmp_path, f"cgroup2 {root} cgroup2 rw 0 0"), self_cgroup=tmp_path / "none"
    )

    def refuse(path: Path, value: str) -> None:
        try:
            raise OSError(errno.EACCES, "Permission denied")
        except OSError as exc:
            raise cgroups.CgroupError(f"cannot write {value!r} to {path}: Permission denied") from exc

    monkeypatch.setattr(cgroups, "_write", refuse)
    assert found is not None
    with pytest.raises(cgroups.CgroupError, match="Permission denied"):
        found.create("web", "web-1", vcpus=1)
    assert not (root / "supervisor").exists()


def test_own_cgroup_not_visible_under_the_mount_falls_back_to_its_root(tmp_path: Path) -> None:
    """A container that bind-mounts its own subtree shows a path that does not exist under the mount."""
    cpu = _v1_cpu(tmp_path / "cpu")
    own = _self_cgroup(tmp_path, "2:cpu:/docker/0123abcd")
    found, _ = detect_cgroup_cpu(_mounts(tmp_path, f"cgroup {cpu} cgroup rw,cpu 0 0"), self_cgroup=own)
    assert found is not None and found.base == cpu


def test_the_provider_passes_its_own_cgroup_on(tmp_path: Path) -> None:
    cpu = _v1_cpu(tmp_path / "cpu")
    (cpu / UNIT).mkdir(parents=True)
    provider = ProcessProvider(
        ProcessProviderConfig(),
        tmp_path / "state",
        mounts_file=_mounts(tmp_path, f"cgroup {cpu} cgroup rw,cpu 0 0"),
        self_cgroup=_self_cgroup(tmp_path, "1:cpu:/" + UNIT),
    )
    assert provider.cgroup is not None and provider.cgroup.path_for("web", "web-1").is_relative_to(cpu / UNIT)
