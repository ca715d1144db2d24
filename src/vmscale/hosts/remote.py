"""``HostProvider``: the libvirt provider for one host that vmscale reaches only through libvirt.

Everything ``LibvirtProvider`` does (domain XML, metadata, idempotent launch and adopt, terminate,
list, CPU samples, pause/resume) is the same; only the "per host" parts differ:

* files: overlays and seed ISOs are volumes of the host's ``vmscale`` storage pool
  (``storage.PoolStorage``), the image is checked to be on the host before a domain is defined;
* the serial console goes to ``/var/log/libvirt/qemu/NAME.console.log`` on the host, a folder every
  libvirt host has (so the path is valid wherever the domain migrates);
* headroom comes from the host's own figures (``hosts.facts``) and its limits in ``[cluster]``;
* the accelerator follows what the host offers (``kvm`` in its capabilities), not this machine;
* a live resize (vertical-first) is checked against the host's own headroom, like a launch.

It never closes its connection: the host inventory owns it (one kept-open connection per host).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import libvirt

from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.errors import PermanentProviderError
from vmscale.hosts.connection import HostConnection
from vmscale.hosts.facts import read_facts
from vmscale.plan.placement import HostLimits
from vmscale.providers.base import ProviderInstance, ProviderStatus
from vmscale.providers.libvirt import xml
from vmscale.providers.libvirt.accel import AccelChoice
from vmscale.providers.libvirt.host import HostLoad
from vmscale.providers.libvirt.image import load_manifest
from vmscale.providers.libvirt.provider import LibvirtProvider, domain_status
from vmscale.providers.libvirt.resize import MemoryFollowsVcpus
from vmscale.providers.libvirt.seed import make_seed_iso
from vmscale.providers.libvirt.storage import PoolStorage

log = logging.getLogger(__name__)

CONSOLE_DIR = "/var/log/libvirt/qemu"


def remote_accel(mode: str, kvm_offered: bool, host: str) -> AccelChoice:
    """``auto``/``kvm``/``tcg`` against what the host's libvirt offers."""
    if mode == "tcg":
        return AccelChoice("tcg", "accel = tcg in the config")
    if kvm_offered:
        return AccelChoice("kvm", f"host {host} offers KVM")
    if mode == "kvm":
        raise PermanentProviderError(
            f"accel = kvm but host {host} does not offer KVM; use accel = auto or tcg"
        )
    return AccelChoice("tcg", f"host {host} does not offer KVM: TCG software emulation (slow)")


class HostProvider(LibvirtProvider):
    def __init__(
        self,
        config: LibvirtProviderConfig,
        host: str,
        conn: HostConnection,
        limits: HostLimits,
        *,
        kvm_offered: bool,
        max_vcpus: int | None = None,
        memory_room: MemoryFollowsVcpus | None = None,
    ) -> None:
        self.host = host
        self.limits = limits
        self._capacities: dict[str, int] = {}  # base disk name -> virtual size, read from the host
        image_dir = config.image_dir or "/var/lib/vmscale/image"
        self.storage = PoolStorage(
            host, conn, pool=config.storage_pool, path=config.storage_path, image_dir=image_dir
        )
        super().__init__(
            config,
            Path(config.storage_path),
            connection=conn,
            accel=remote_accel(config.accel, kvm_offered, host),
            clock=conn.clock,
            max_vcpus=max_vcpus,
            memory_room=memory_room,
        )

    # ---------------------------------------------------------------- per-host overrides
    def _prepare_files_dir(self, state_dir: Path) -> Path:
        return Path(self.config.storage_path)  # on the host; made by the storage pool, not here

    def overlay_path(self, name: str) -> Path:
        return Path(self.storage.path(f"{name}.qcow2"))

    def seed_path(self, name: str) -> Path:
        return Path(self.storage.path(f"{name}.iso"))

    def console_log(self, name: str) -> Path:
        return Path(CONSOLE_DIR) / f"{name}.console.log"

    def _overlay_exists(self, name: str) -> bool:
        return self.storage.exists(f"{name}.qcow2")

    def backing_image(self) -> Path:
        if self.config.boot == "disk":
            return super().backing_image()  # the cloud image: the same path on every host
        manifest = load_manifest(self.image_dir)
        files = [manifest.disk, manifest.kernel, manifest.initrd]
        self._capacities[manifest.disk] = self.storage.image_capacity(files)
        return manifest.path(self.image_dir, "disk")

    def make_overlay(self, name: str, backing: Path, *, overlay: Path | None = None) -> None:
        if overlay is not None:  # a clone's overlay on a golden disk: single-host clones only
            raise PermanentProviderError(f"{name}: snapshot clones are not supported on remote hosts")
        capacity = self._capacities.get(backing.name) or self.storage.image_capacity([backing.name])
        self.storage.create_overlay(f"{name}.qcow2", str(backing), capacity)

    def _ensure_seed(self, name: str) -> None:
        if self.storage.exists(f"{name}.iso"):
            return
        user_data = Path(self.config.user_data).read_text() if self.config.user_data else "#cloud-config\n"
        with tempfile.TemporaryDirectory(prefix="vmscale-seed-") as tmp:
            iso = make_seed_iso(Path(tmp) / "seed.iso", user_data=user_data, instance_id=name, hostname=name)
            self.storage.upload(f"{name}.iso", iso.read_bytes())

    def _rotate_console(self, name: str) -> None:
        """Nothing to do: the console log on the host is appended to (it holds every boot)."""

    def _remove_files(self, name: str) -> None:
        for volume in (f"{name}.qcow2", f"{name}.iso"):
            self.storage.delete(volume)

    def _host_load(self) -> HostLoad:
        facts = self.conn.call("host facts", lambda c: read_facts(c, kvm=self.accel.accel == "kvm"))
        return HostLoad(
            available_memory_mb=facts.memory_free_mb, host_cpus=facts.cpus, running_vcpus=facts.running_vcpus
        )

    def _headroom_limits(self) -> tuple[int, float]:
        return self.limits.min_free_memory_mb, self.limits.max_vcpu_overcommit

    def instance_of(
        self, meta: xml.InstanceMeta, status: ProviderStatus, vcpus: int, **extra: str
    ) -> ProviderInstance:
        return super().instance_of(meta, status, vcpus, host=self.host, **extra)

    def describe(self, name: str) -> ProviderInstance | None:
        """``name`` as ``list`` would report it, or None when it is not on this host."""

        def one(conn: libvirt.virConnect) -> tuple[xml.InstanceMeta, ProviderStatus, int, str] | None:
            try:
                dom = conn.lookupByName(name)
                meta = xml.parse_metadata(dom.XMLDesc(0))
                return (
                    None if meta is None else (meta, domain_status(dom), int(dom.info()[3]), dom.UUIDString())
                )
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise

        row = self.conn.call("describe", one, instance=name)
        if row is None:
            return None
        meta, status, vcpus, uuid = row
        return self.instance_of(meta, status, vcpus, uuid=uuid)

    def close(self) -> None:
        """The inventory owns the connection; nothing to release here."""
