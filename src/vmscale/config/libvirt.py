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

import ipaddress
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vmscale.config.base import Section
from vmscale.config.cloudinit import qcow2_problem, user_data_file_problem

# Health settings for TCG guests, used by the demo and the benchmarks. A guest under software
# emulation is ~14x slower than the host: its probes get more time (and more misses in a row)
# before it is called dead, and its boot far more than a process needs.
TCG_HEALTH: dict[str, Any] = {"timeout_s": 3.0, "unhealthy_threshold": 5, "boot_timeout_s": 120}


class AddressesConfig(Section):
    """Addresses vmscale assigns to guests on a bridged network (see providers/libvirt/addresses.py)."""

    pool: str = Field("", description="CIDR of the guest addresses (instance N gets the Nth); empty = DHCP")
    network: str = Field("", description="the guests' on-link subnet (CIDR) they configure; empty = the pool")
    gateway: str = Field("", description="default route the guests set; empty = none (same subnet only)")

    @model_validator(mode="after")
    def _consistent(self) -> AddressesConfig:
        if not self.pool:
            if self.network or self.gateway:
                raise ValueError('network and gateway need a pool (pool = "198.51.100.0/24" e.g.)')
            return self
        try:
            pool = ipaddress.IPv4Network(self.pool, strict=False)
            net = ipaddress.IPv4Network(self.network, strict=False) if self.network else pool
        except ValueError as exc:
            raise ValueError(f"pool and network must be IPv4 CIDRs like 198.51.100.0/24: {exc}") from None
        if not pool.subnet_of(net):
            raise ValueError(f"pool {pool} must lie inside network {net}")
        if self.gateway:
            try:
                gw = ipaddress.IPv4Address(self.gateway)
            except ValueError:
                raise ValueError(f"gateway {self.gateway!r} is not an IPv4 address") from None
            if gw not in net:
                raise ValueError(f"gateway {gw} is not inside network {net}")
        return self


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
    addresses: AddressesConfig = AddressesConfig()
    storage_pool: str = Field(
        "vmscale", description="libvirt storage pool (a folder) for overlays on hosts reached over a URI"
    )
    storage_path: str = Field(
        "/var/lib/libvirt/images/vmscale", description="that pool's folder: the same path on every host"
    )
    migrate_timeout_s: float = Field(
        300.0, gt=0, le=3600, description="a live migration still running after this is aborted"
    )
    call_timeout_s: float = Field(15.0, gt=0, le=600, description="bound on every libvirt call")
    overlay_timeout_s: float = Field(30.0, gt=0, le=600, description="bound on qemu-img overlay creation")
    min_free_memory_mb: int = Field(
        512, ge=0, description="refuse a launch that would leave less host memory available than this"
    )
    max_vcpu_overcommit: float = Field(
        4.0, gt=0, description="refuse a launch when running vCPUs would exceed host CPUs x this"
    )
    launch: Literal["boot", "clone"] = Field(
        "boot",
        description="boot = every instance boots; clone = restore a copy of the group's golden snapshot "
        "(booted and saved once), which serves in about a second (boot = kernel, network = user only)",
    )
    golden_boot_timeout_s: float = Field(
        180.0, gt=0, le=3600, description="longest wait for the golden snapshot's guest to come up"
    )
    vcpu_unplug: bool = Field(
        False,
        description="allow live vCPU removal (off: libvirt 9.0 + QEMU 7.2 under TCG lose track of an "
        "unplugged vCPU, see providers/libvirt/resize.py); shrinking then removes instances instead",
    )

    @model_validator(mode="after")
    def _clone_needs(self) -> LibvirtProviderConfig:
        if self.launch == "clone" and (self.boot != "kernel" or self.network != "user"):
            raise ValueError(
                'launch = "clone" needs boot = "kernel" and network = "user" (a restored clone keeps the '
                "golden's MAC and DHCP lease on a bridge, and cloud images have no identity push)"
            )
        return self

    @model_validator(mode="after")
    def _addresses_need_a_bridge(self) -> LibvirtProviderConfig:
        if self.addresses.pool and self.network == "user":
            raise ValueError(
                "addresses.pool needs network = 'bridge' (or 'network'): user-mode guests are reached "
                "through a loopback port forward, not an address of their own"
            )
        return self

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
