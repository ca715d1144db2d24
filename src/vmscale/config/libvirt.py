"""Settings of the ``libvirt`` provider. Owned by the libvirt provider (issue 5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vmscale.config.base import Section


class LibvirtProviderConfig(Section):
    uri: str = Field("qemu:///system", description="libvirt connection URI")
    accel: Literal["auto", "kvm", "tcg"] = Field("auto", description="auto = KVM only with vmx/svm, else TCG")
    image_dir: str = Field("", description="folder of the built image; empty = <state.dir>/image")
    base_port: int = Field(18200, ge=1024, le=65000, description="VM N is forwarded to 127.0.0.1:base_port+N")
