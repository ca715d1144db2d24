"""Settings of the ``libvirt`` provider. Owned by the libvirt provider (issue 5).

Two ways to boot a VM:

* ``boot = "kernel"`` (default): the lean image ``vmscale image build`` makes — direct kernel boot of
  the host's cloud kernel, a tiny initrd and a busybox init that starts the backend at once.
* ``boot = "disk"``: a user-supplied cloud image (``cloud_image``) that boots through its own
  bootloader, configured by cloud-init from a NoCloud seed ISO made from ``user_data``.

Networking: ``network = "user"`` is QEMU user-mode networking with one loopback port forward per VM
(``127.0.0.1:base_port+N`` -> guest port 8000); it needs no bridge and is what tests use.
``"network"``/``"bridge"`` attach to a libvirt network or a host bridge for real hosts; the
endpoint is then the guest's own address, which vmscale learns from libvirt (DHCP leases).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from vmscale.config.base import Section
from vmscale.config.cloudinit import qcow2_problem, user_data_file_problem

# Health settings for TCG guests, used by the demo and the benchmarks. A guest under software
# emulation is ~14x slower than the host: its probes get more time (and more misses in a row)
# before it is called dead, and its boot far more than a process needs.
TCG_HEALTH: dict[str, Any] = {"timeout_s": 3.0, "unhealthy_threshold": 5, "boot_timeout_s": 120}


class LibvirtProviderConfig(Section):
    uri: str = Field("qemu:///system", description="libvirt connection URI")
    accel: Literal["auto", "kvm", "tcg"] = Field("auto", description="auto = KVM only with vmx/svm, else TCG")
    image_dir: str = Field("", description="folder of the built image; empty = /var/lib/vmscale/image")
    base_port: int = Field(18200, ge=1024, le=65000, description="VM N is forwarded to 127.0.0.1:base_port+N")
    instance_dir: str = Field(
        "",
        description="folder for overlays and console logs; empty = <state dir>/libvirt, or "
        "/var/lib/vmscale/instances/<id> when the QEMU user cannot reach the state dir",
    )
    guest_port: int = Field(8000, ge=1, le=65535, description="port the backend listens on inside the guest")
    boot: Literal["kernel", "disk"] = Field(
        "kernel", description="kernel = lean built image; disk = cloud image"
    )
    cloud_image: str = Field(
        "", validate_default=True, description="qcow2 cloud image for boot='disk' (each VM gets an overlay)"
    )
    user_data: str = Field("", description="cloud-init user-data file for boot='disk' (NoCloud seed ISO)")
    network: Literal["user", "network", "bridge"] = Field(
        "user", description="user = loopback port forward (tests); network/bridge = real hosts"
    )
    network_name: str = Field("default", description="libvirt network for network='network'")
    bridge: str = Field("br0", description="host bridge for network='bridge'")
    call_timeout_s: float = Field(15.0, gt=0, le=600, description="bound on every libvirt call")
    overlay_timeout_s: float = Field(30.0, gt=0, le=600, description="bound on qemu-img overlay creation")
    min_free_memory_mb: int = Field(
        512, ge=0, description="refuse a launch that would leave less host memory available than this"
    )
    max_vcpu_overcommit: float = Field(
        4.0, gt=0, description="refuse a launch when running vCPUs would exceed host CPUs x this"
    )

    @field_validator("cloud_image")
    @classmethod
    def _cloud_image(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            if info.data.get("boot") == "disk":
                raise ValueError(
                    "boot = 'disk' needs a qcow2 cloud image: set provider.libvirt.cloud_image (build one "
                    "with `vmscale image build --kind cloud`), or use boot = 'kernel'"
                )
            return value
        problem = qcow2_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("user_data")
    @classmethod
    def _user_data(cls, value: str) -> str:
        problem = user_data_file_problem(value) if value else ""
        if problem:
            raise ValueError(problem)
        return value
