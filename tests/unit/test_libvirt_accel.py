"""Accelerator choice: KVM only with vmx/svm AND a usable /dev/kvm; TCG otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt.accel import choose_accel, cpu_has_hw_virt

INTEL = "processor : 0\nflags\t\t: fpu vme de pse msr vmx sse2\n"
AMD = "processor : 0\nflags\t\t: fpu svm sse2\n"
NONE = "processor : 0\nflags\t\t: fpu vme de pse msr sse2 hypervisor\n"


@pytest.mark.parametrize(("cpuinfo", "expected"), [(INTEL, True), (AMD, True), (NONE, False), ("", False)])
def test_hw_virt_flag_detection(cpuinfo: str, expected: bool) -> None:
    assert cpu_has_hw_virt(cpuinfo) is expected


def test_vmx_in_another_field_does_not_count() -> None:
    assert cpu_has_hw_virt("model name : vmx-like cpu\nflags : fpu sse2\n") is False


@pytest.fixture
def kvm_dev(tmp_path: Path) -> Path:
    """A stand-in for /dev/kvm that opens read-write (a regular file)."""
    dev = tmp_path / "kvm"
    dev.write_text("")
    return dev


def cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_auto_picks_kvm_when_flag_and_device_are_there(tmp_path: Path, kvm_dev: Path) -> None:
    choice = choose_accel("auto", cpuinfo_path=cpuinfo(tmp_path, INTEL), kvm_path=kvm_dev)
    assert (choice.accel, choice.domain_type) == ("kvm", "kvm")


def test_auto_falls_back_to_tcg_without_the_flag_even_if_dev_kvm_exists(
    tmp_path: Path, kvm_dev: Path
) -> None:
    # The situation measured on these machines: /dev/kvm from a nested paravirtual module, no vmx/svm.
    choice = choose_accel("auto", cpuinfo_path=cpuinfo(tmp_path, NONE), kvm_path=kvm_dev)
    assert (choice.accel, choice.domain_type) == ("tcg", "qemu")
    assert "vmx/svm" in choice.reason


def test_auto_falls_back_to_tcg_when_dev_kvm_cannot_open(tmp_path: Path) -> None:
    choice = choose_accel("auto", cpuinfo_path=cpuinfo(tmp_path, AMD), kvm_path=tmp_path / "missing")
    assert choice.accel == "tcg" and "cannot be opened" in choice.reason


def test_forced_kvm_on_a_host_without_it_is_a_clear_permanent_error(tmp_path: Path, kvm_dev: Path) -> None:
    with pytest.raises(PermanentProviderError, match="accel = kvm"):
        choose_accel("kvm", cpuinfo_path=cpuinfo(tmp_path, NONE), kvm_path=kvm_dev)


def test_forced_tcg_never_looks_at_the_host(tmp_path: Path) -> None:
    choice = choose_accel("tcg", cpuinfo_path=tmp_path / "nope", kvm_path=tmp_path / "nope")
    assert choice.accel == "tcg"
