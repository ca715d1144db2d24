"""Choosing the accelerator: KVM where the host really has hardware virtualisation, else TCG.

``/dev/kvm`` existing is not enough: on some nested hosts it belongs to a paravirtual module on which
a stock guest kernel hangs during boot. So ``auto`` requires *both* the vmx/svm CPU flag and a
``/dev/kvm`` that opens; anything else falls back to TCG (software emulation, libvirt domain type
``qemu``) and says why.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vmscale.errors import PermanentProviderError

log = logging.getLogger(__name__)

Accel = Literal["kvm", "tcg"]


@dataclass(frozen=True, slots=True)
class AccelChoice:
    accel: Accel
    reason: str

    @property
    def domain_type(self) -> str:
        """libvirt's ``<domain type=...>``: ``kvm`` for KVM, ``qemu`` for TCG."""
        return "kvm" if self.accel == "kvm" else "qemu"


def cpu_has_hw_virt(cpuinfo: str) -> bool:
    """True when any ``flags`` line of /proc/cpuinfo lists vmx (Intel) or svm (AMD)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and ":" in line:
            flags = line.split(":", 1)[1].split()
            if "vmx" in flags or "svm" in flags:
                return True
    return False


def kvm_device_usable(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def choose_accel(
    mode: Literal["auto", "kvm", "tcg"],
    *,
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
    kvm_path: Path = Path("/dev/kvm"),
) -> AccelChoice:
    """Resolve ``auto``/``kvm``/``tcg`` against this host. ``kvm`` on a host without it is an error."""
    if mode == "tcg":
        choice = AccelChoice("tcg", "accel = tcg in the config")
    else:
        try:
            hw = cpu_has_hw_virt(cpuinfo_path.read_text())
        except OSError:
            hw = False
        dev = kvm_device_usable(kvm_path)
        if hw and dev:
            choice = AccelChoice("kvm", f"CPU has vmx/svm and {kvm_path} opens")
        elif mode == "kvm":
            raise PermanentProviderError(
                f"accel = kvm but this host cannot run KVM guests (vmx/svm flag: {hw}, {kvm_path} usable: "
                f"{dev}); use accel = auto or tcg"
            )
        else:
            missing = "no vmx/svm CPU flag" if not hw else f"{kvm_path} cannot be opened"
            choice = AccelChoice("tcg", f"{missing}: falling back to TCG software emulation (slow)")
    log.info("libvirt accelerator: %s (%s)", choice.accel, choice.reason)
    return choice
