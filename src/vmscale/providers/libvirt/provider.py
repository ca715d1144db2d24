"""``LibvirtProvider``: every instance is a libvirt domain over a qcow2 overlay of vmscale's image.

Files per instance (``<state_dir>/libvirt/``, or ``/var/lib/vmscale/instances/<id>`` when the state
folder is not reachable by the ``libvirt-qemu`` user, e.g. under a 0700 home or pytest's tmp)::

    overlays/NAME.qcow2   linked clone of the base image (deleted by terminate)
    seeds/NAME.iso        cloud-init seed, boot = "disk" only (deleted by terminate)
    console/NAME.log      serial console; kept after terminate so a failed boot can be read
                          (the previous one is rotated to NAME.log.1 at the next launch)

On a host reached over a URI (``[cluster]`` hosts) the same files live on that host, in a libvirt
storage pool: ``remote.HostProvider`` overrides the few methods marked "per host" below.

Idempotence: the domain name is the instance name. ``launch`` looks it up first and finishes what
it finds (defined but not started, saved, paused); the overlay is created under a temporary name
and renamed, so a crash never leaves a half-written overlay that looks complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import libvirt
import psutil

from vmscale.clock import Clock, SystemClock
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.errors import (
    InstanceNotFoundError,
    NoHeadroomError,
    PermanentProviderError,
    TemporaryProviderError,
)
from vmscale.providers.base import (
    GoldenSnapshot,
    InstanceSpec,
    ProviderInstance,
    ProviderStatus,
    WarmKind,
    instance_port,
    warm_kinds_of,
)
from vmscale.providers.cpu import CpuReading, CpuTracker
from vmscale.providers.keyed_lock import KeyedLock
from vmscale.providers.libvirt import xml
from vmscale.providers.libvirt.accel import AccelChoice, choose_accel
from vmscale.providers.libvirt.addresses import StaticAddressing, mac_for
from vmscale.providers.libvirt.clone import CloneLauncher
from vmscale.providers.libvirt.connection import BoundedCalls, LibvirtConnection
from vmscale.providers.libvirt.domains import (
    bring_up,
    destroy_and_undefine,
    domain_status,
    leased_address,
    prepare_files_dir,
)
from vmscale.providers.libvirt.host import HeadroomGuard, HostLoad, headroom_problem
from vmscale.providers.libvirt.image import DEFAULT_IMAGE_DIR, load_manifest
from vmscale.providers.libvirt.resize import MemoryFollowsVcpus, set_memory, set_vcpus
from vmscale.providers.libvirt.seed import make_seed_iso
from vmscale.providers.libvirt.stats import fetch_cpu

log = logging.getLogger(__name__)


class LibvirtProvider:
    """The ``Provider`` protocol over libvirt (see ``vmscale.providers.base`` for the contract)."""

    kind = "libvirt"
    warm_kinds: frozenset[WarmKind] = warm_kinds_of("libvirt")

    def __init__(
        self,
        config: LibvirtProviderConfig,
        state_dir: Path,
        *,
        clock: Clock | None = None,
        connection: BoundedCalls | None = None,
        accel: AccelChoice | None = None,
        max_vcpus: int | None = None,
        memory_room: MemoryFollowsVcpus | None = None,
    ) -> None:
        self.config = config
        self.max_vcpus = max_vcpus  # template.max_vcpus: room every domain gets to grow live
        self.memory_room = memory_room  # template.max_memory_mb: memory grows with vCPUs by balloon
        self.clock = clock or SystemClock()
        self.conn: BoundedCalls = connection or LibvirtConnection(config.uri, config.call_timeout_s)
        self.headroom = HeadroomGuard.for_host(self.conn.uri)  # one per host: launches take turns
        self.accel = accel or choose_accel(config.accel)
        self.image_dir = Path(config.image_dir) if config.image_dir else DEFAULT_IMAGE_DIR
        pool = config.addresses
        self.addressing = StaticAddressing.parse(pool.pool, pool.network, pool.gateway) if pool.pool else None
        self.files_dir = prepare_files_dir(state_dir, config.instance_dir)
        self._tracker = CpuTracker()
        self._lock = KeyedLock()  # per instance name
        self._clones = CloneLauncher(self) if config.launch == "clone" else None

    # ---------------------------------------------------------------- paths and helpers (per host)
    def overlay_path(self, name: str) -> Path:
        return self.files_dir / "overlays" / f"{name}.qcow2"

    def seed_path(self, name: str) -> Path:
        return self.files_dir / "seeds" / f"{name}.iso"

    def console_log(self, name: str) -> Path:
        return self.files_dir / "console" / f"{name}.log"

    def _port(self, spec: InstanceSpec) -> int:
        return instance_port(self.config.base_port, spec.index)

    def _endpoint(self, meta: xml.InstanceMeta) -> str:
        if self.config.network == "user":
            return f"http://127.0.0.1:{meta.port}"
        if meta.address:  # vmscale assigned it: known without asking, the same on every host
            return f"http://{meta.address}:{self.config.guest_port}"
        return ""

    def _lookup(self, name: str) -> libvirt.virDomain | None:
        def find(conn: libvirt.virConnect) -> libvirt.virDomain | None:
            try:
                return conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise

        return self.conn.call("lookup", find, instance=name)

    def has_domain(self, name: str) -> bool:
        """Whether a domain of this name is defined here (bounded, like every call)."""
        return self._lookup(name) is not None

    def forget_samples(self, name: str) -> None:
        """Drop the CPU baseline of an instance that left (migrated away): its next host starts one."""
        self._tracker.forget(name)

    def instance_of(
        self, meta: xml.InstanceMeta, status: ProviderStatus, vcpus: int, **extra: str
    ) -> ProviderInstance:
        details = {
            "overlay": str(self.overlay_path(meta.name)),
            "console_log": str(self.console_log(meta.name)),
            "port": str(meta.port),
            "accel": self.accel.accel,
            "epoch": str(meta.epoch),
            **({"address": meta.address} if meta.address else {}),
            **extra,
        }
        endpoint = self._endpoint(meta) or extra.get("endpoint", "")
        return ProviderInstance(
            name=meta.name,
            group=meta.group,
            status=status,
            endpoint=endpoint,
            vcpus=vcpus,
            created_at=meta.created_at,
            details=details,
        )

    # ---------------------------------------------------------------- launch
    def _host_load(self) -> HostLoad:
        """This machine's memory and CPUs (per host: a remote host reports its own through libvirt)."""

        def running_vcpus(conn: libvirt.virConnect) -> int:
            total = 0
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                try:
                    total += int(dom.info()[3])
                except libvirt.libvirtError as exc:
                    # Gone between listing and reading (anyone's domain on a shared libvirtd): not
                    # running, so not counted; it must not fail this launch.
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return total

        return HostLoad(
            available_memory_mb=psutil.virtual_memory().available / 2**20,
            host_cpus=os.cpu_count() or 1,
            running_vcpus=self.conn.call("count vCPUs", running_vcpus),
        )

    def _headroom_limits(self) -> tuple[int, float]:
        """(min_free_memory_mb, max_vcpu_overcommit) that launches on this host keep to."""
        return self.config.min_free_memory_mb, self.config.max_vcpu_overcommit

    def _headroom_problem(self, *, memory_mb: int, vcpus: int, growth: bool = False) -> str | None:
        """Why this host cannot take a new VM of this size (``growth``: a running VM growing by it)."""
        min_free, overcommit = self._headroom_limits()
        return headroom_problem(
            self._host_load(),
            memory_mb=memory_mb,
            vcpus=vcpus,
            min_free_memory_mb=min_free,
            max_vcpu_overcommit=overcommit,
            growth=growth,
        )

    def _check_headroom(self, spec: InstanceSpec) -> None:
        if problem := self._headroom_problem(memory_mb=spec.memory_mb, vcpus=spec.vcpus):
            raise TemporaryProviderError(f"not starting {spec.name}: {problem}", instance=spec.name)

    def _check_growth(self, name: str, before: int, after: int) -> None:
        """Refuse a resize the host's headroom cannot take (the limits a launch is checked against)."""
        room = self.memory_room
        more_mb = room.at(after) - room.at(before) if room is not None else 0
        if problem := self._headroom_problem(memory_mb=more_mb, vcpus=after - before, growth=True):
            raise NoHeadroomError(
                f"not growing {name} from {before} to {after} vCPUs: {problem}", instance=name
            )

    def make_overlay(self, name: str, backing: Path, *, overlay: Path | None = None) -> None:
        overlay = overlay or self.overlay_path(name)
        if overlay.exists():
            return  # made by an earlier, interrupted launch: finish with it
        tmp = overlay.with_suffix(".partial")
        argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(backing), "-F", "qcow2", str(tmp)]
        try:
            subprocess.run(
                argv, check=True, capture_output=True, text=True, timeout=self.config.overlay_timeout_s
            )
        except subprocess.TimeoutExpired as exc:
            tmp.unlink(missing_ok=True)
            raise TemporaryProviderError(f"qemu-img create timed out for {name}", instance=name) from exc
        except (OSError, subprocess.CalledProcessError) as exc:
            tmp.unlink(missing_ok=True)
            detail = getattr(exc, "stderr", "") or str(exc)
            raise PermanentProviderError(
                f"cannot create overlay {overlay}: {detail.strip()}", instance=name
            ) from exc
        tmp.replace(overlay)

    def _meta(self, spec: InstanceSpec, port: int) -> xml.InstanceMeta:
        address = ""
        if self.addressing is not None and self.config.network != "user":
            address = str(self.addressing.address(spec.index))
        return xml.InstanceMeta(
            spec.group, spec.name, spec.index, port, self.clock.now(), address=address, epoch=spec.epoch
        )

    def domain_spec(self, spec: InstanceSpec, port: int) -> xml.DomainSpec:
        meta = self._meta(spec, port)
        addressed = self.addressing is not None and bool(meta.address)
        room = max(spec.vcpus, self.max_vcpus or 0)
        common = {
            "meta": meta,
            "domain_type": self.accel.domain_type,
            "vcpus": spec.vcpus,
            "max_vcpus": room,
            "memory_mb": self.memory_room.at(spec.vcpus) if self.memory_room else spec.memory_mb,
            "max_memory_mb": self.memory_room.max_memory_mb if self.memory_room else 0,
            "disk_path": str(self.overlay_path(spec.name)),
            "console_log": str(self.console_log(spec.name)),
            "network": self.config.network,
            "host_port": port,
            "guest_port": self.config.guest_port,
            "network_name": self.config.network_name,
            "bridge": self.config.bridge,
            "mac": mac_for(meta.address) if addressed else "",
            "address": self.addressing.cidr(spec.index) if self.addressing is not None and addressed else "",
            "gateway": self.addressing.gateway if self.addressing is not None else "",
        }
        if self.config.boot == "disk":
            return xml.DomainSpec(boot="disk", seed_iso=str(self.seed_path(spec.name)), **common)  # type: ignore[arg-type]
        manifest = load_manifest(self.image_dir)
        return xml.DomainSpec(
            boot="kernel",
            kernel=str(manifest.path(self.image_dir, "kernel")),
            initrd=str(manifest.path(self.image_dir, "initrd")),
            # A domain that can grow runs its fib pool on the online CPUs ("auto"), not a fixed count.
            kernel_args={**({"workers": "auto"} if room > spec.vcpus else {}), **spec.workload_args},
            **common,  # type: ignore[arg-type]
        )

    def backing_image(self) -> Path:
        if self.config.boot == "disk":
            if not self.config.cloud_image or not Path(self.config.cloud_image).is_file():
                raise PermanentProviderError(
                    f"boot = disk needs provider.libvirt.cloud_image (got {self.config.cloud_image!r})"
                )
            # Resolved: an overlay must name the file itself, never a symlink that a rebuild of the
            # image later points elsewhere (the overlay would then read another image's blocks).
            return Path(self.config.cloud_image).resolve()
        return load_manifest(self.image_dir).path(self.image_dir, "disk")

    def launch(self, spec: InstanceSpec) -> ProviderInstance:
        port = self._port(spec)
        with self._lock(spec.name), self.headroom.turn():  # check headroom and start as one step
            dom = self._lookup(spec.name)
            if dom is not None and self.config.boot == "kernel" and not self._overlay_exists(spec.name):
                # Its disk is gone (deleted by hand?): the domain cannot boot; remake it from scratch
                # (only if it is ours: _adopt refuses foreign domains before anything is touched).
                self._adopt_check(dom, spec)
                self.remove_domain(spec.name, graceful_timeout_s=0)
                dom = None
            if dom is not None:
                adopted = self._adopt(dom, spec)
                if self._clones is not None:
                    self._clones.adopt(spec, port)  # a clone restored but never named: name it now
                return adopted
            self._check_headroom(spec)
            if self._clones is not None:
                return self._clones.launch(spec, port)
            backing = self.backing_image()
            self.make_overlay(spec.name, backing)
            if self.config.boot == "disk":
                self._ensure_seed(spec.name)
            self._rotate_console(spec.name)
            try:
                domain_spec = self.domain_spec(spec, port)
                domain_xml = xml.build_domain_xml(domain_spec)
            except ValueError as exc:
                raise PermanentProviderError(
                    f"bad instance spec for {spec.name}: {exc}", instance=spec.name
                ) from exc

            def define_and_start(conn: libvirt.virConnect) -> str:
                new = conn.defineXML(domain_xml)
                new.create()
                return str(new.UUIDString())

            uuid = self.conn.call("define+start", define_and_start, instance=spec.name)
            log.info("launched %s (%s, port %d)", spec.name, self.accel.accel, port)
            return self.instance_of(domain_spec.meta, ProviderStatus.RUNNING, spec.vcpus, uuid=uuid)

    def _overlay_exists(self, name: str) -> bool:  # per host
        return self.overlay_path(name).exists()

    def _ensure_seed(self, name: str) -> None:  # per host
        """The cloud-init seed ISO of ``name`` (boot = "disk"), made if it is not there yet."""
        if self.seed_path(name).exists():
            return
        user_data = Path(self.config.user_data).read_text() if self.config.user_data else "#cloud-config\n"
        make_seed_iso(self.seed_path(name), user_data=user_data, instance_id=name, hostname=name)

    def _rotate_console(self, name: str) -> None:  # per host
        log_path = self.console_log(name)
        if log_path.exists():
            log_path.replace(log_path.with_suffix(".log.1"))

    def _adopt_check(self, dom: libvirt.virDomain, spec: InstanceSpec) -> xml.InstanceMeta:
        """The domain's vmscale metadata; PermanentProviderError when it is not this group's."""
        meta_xml = self.conn.call("read domain", lambda c: dom.XMLDesc(0), instance=spec.name)
        found = xml.parse_metadata(meta_xml)
        if found is None or found.group != spec.group:
            raise PermanentProviderError(
                f"a libvirt domain named {spec.name} exists but is not this group's vmscale instance; "
                "rename or remove it",
                instance=spec.name,
            )
        return found

    def _adopt(self, dom: libvirt.virDomain, spec: InstanceSpec) -> ProviderInstance:
        """Finish a domain an earlier launch left behind (defined, saved, paused or stopped)."""
        found = self._adopt_check(dom, spec)
        status, vcpus, uuid = self.conn.call(
            "adopt", lambda c: bring_up(dom), instance=spec.name, timeout_s=self.slow_timeout_s
        )
        log.info("adopted existing domain %s", spec.name)
        return self.instance_of(found, status, vcpus, uuid=uuid)

    @property
    def slow_timeout_s(self) -> float:
        """Start from a managed save restores memory from disk: give it longer than a plain call."""
        return max(self.config.call_timeout_s, 120.0)

    # ---------------------------------------------------------------- terminate
    def remove_domain(self, name: str, *, graceful_timeout_s: float) -> None:
        dom = self._lookup(name)
        if dom is None:
            return
        if graceful_timeout_s > 0 and self.conn.call("is active", lambda c: dom.isActive(), instance=name):
            try:
                self.conn.call(
                    "shutdown",
                    lambda c: dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN),
                    instance=name,
                )
                deadline = self.clock.monotonic() + graceful_timeout_s
                while self.clock.monotonic() < deadline:
                    if not self.conn.call("is active", lambda c: dom.isActive(), instance=name):
                        break
                    self.clock.sleep(0.2)
            except (TemporaryProviderError, InstanceNotFoundError):
                pass  # destroy below is the answer to a guest that will not shut down

        self.conn.call("destroy+undefine", lambda c: destroy_and_undefine(dom), instance=name)

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0) -> None:
        with self._lock(name):
            with contextlib.suppress(InstanceNotFoundError):
                self.remove_domain(name, graceful_timeout_s=graceful_timeout_s)
            self._tracker.forget(name)
            self._remove_files(name)
            log.info("terminated %s", name)
        if self._clones is not None:
            self._clones.collect()  # a golden of an old image may have lost its last clone

    # ---------------------------------------------------------------- snapshot clones
    def restores_clones(self) -> bool:
        return self._clones is not None

    def prepare(self, spec: InstanceSpec) -> GoldenSnapshot | None:
        """Make the group's golden snapshot now (with ``launch = "clone"``), so the first scale-up
        restores a clone instead of waiting for the golden's boot. None when booting."""
        return None if self._clones is None else self._clones.prepare(spec)

    def drop_goldens(self, group: str) -> None:
        """Remove the group's golden snapshots (when the group is removed: ``vmscale down``)."""
        CloneLauncher(self).drop(group)

    def _remove_files(self, name: str) -> None:  # per host
        for path in (
            self.overlay_path(name),
            self.overlay_path(name).with_suffix(".partial"),
            self.seed_path(name),
            self.files_dir / "restore" / f"{name}.fifo",  # a clone's, if its restore was cut short
        ):
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- observe
    def list(self, group: str) -> list[ProviderInstance]:
        def collect(conn: libvirt.virConnect) -> list[tuple[xml.InstanceMeta, ProviderStatus, int, str, str]]:
            found = []
            for dom in conn.listAllDomains(0):
                try:
                    meta = xml.parse_metadata(
                        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml.VMSCALE_NS, 0)
                    )
                    if meta is None or meta.group != group:
                        continue
                    status = domain_status(dom)
                    vcpus = int(dom.info()[3])
                    address = ""
                    if (
                        self.config.network != "user"
                        and status is ProviderStatus.RUNNING
                        and not meta.address
                    ):
                        address = leased_address(dom)
                    found.append((meta, status, vcpus, str(dom.UUIDString()), address))
                except libvirt.libvirtError as exc:
                    # not ours (no metadata) or vanished between listing and reading: skip
                    if exc.get_error_code() not in (
                        libvirt.VIR_ERR_NO_DOMAIN_METADATA,
                        libvirt.VIR_ERR_NO_DOMAIN,
                    ):
                        raise
            return found

        rows = self.conn.call("list", collect)
        port = self.config.guest_port
        return [
            self.instance_of(
                m, s, v, uuid=u, **({"endpoint": f"http://{a}:{port}", "address": a} if a else {})
            )
            for m, s, v, u, a in sorted(rows, key=lambda r: r[0].index)
        ]

    def sample(self, names: Sequence[str]) -> dict[str, float]:
        wanted = set(names)
        if not wanted:
            return {}
        readings = self.conn.call("domain stats", lambda c: fetch_cpu(c, wanted))
        now = self.clock.monotonic()
        out: dict[str, float] = {}
        for name, (cpu_ns, vcpus) in readings.items():
            if name in wanted:
                pct = self._tracker.update(name, CpuReading(cpu_ns / 1e9, now, vcpus))
                if pct is not None:
                    out[name] = pct
        return out

    # ---------------------------------------------------------------- resize (Resizer role)
    @property
    def can_shrink(self) -> bool:
        """Whether ``resize`` may remove vCPUs live (see ``resize.py`` for why not by default)."""
        return self.config.vcpu_unplug

    def resize(self, name: str, vcpus: int) -> None:
        """Hot-add or hot-remove vCPUs of a running instance (see ``resize.py``)."""
        dom = self._lookup(name)
        if dom is None:
            raise InstanceNotFoundError(f"no domain {name} to resize", instance=name)
        # Growth takes the host's turn like a launch: the check and the hot-add are one step.
        with self._lock(name), self.headroom.turn():
            before = int(self.conn.call("read vCPUs", lambda c: dom.info()[3], instance=name))
            if vcpus > before:
                self._check_growth(name, before, vcpus)
            after = set_vcpus(
                self.conn, dom, name, vcpus, timeout_s=self.slow_timeout_s, allow_unplug=self.can_shrink
            )
            memory = ""
            if self.memory_room is not None:  # after the vCPUs: they are the capacity asked for
                set_memory(self.conn, dom, name, self.memory_room.at(after), timeout_s=self.slow_timeout_s)
                memory = f", memory {self.memory_room.at(before)} -> {self.memory_room.at(after)} MiB"
        self._tracker.forget(name)  # CPU percent is of the vCPUs it has: start a new baseline
        log.info("resized %s: %d -> %d vCPUs%s", name, before, after, memory)

    # ---------------------------------------------------------------- warm pool
    def pause(self, name: str, kind: WarmKind = "paused") -> None:
        dom = self._lookup(name)
        if dom is None:
            raise InstanceNotFoundError(f"no domain {name} to pause", instance=name)
        if kind == "saved":
            self.conn.call(
                "managed save", lambda c: dom.managedSave(0), instance=name, timeout_s=self.slow_timeout_s
            )
        else:
            self.conn.call("suspend", lambda c: dom.suspend(), instance=name)
        self._tracker.forget(name)

    def resume(self, name: str) -> None:
        dom = self._lookup(name)
        if dom is None:
            raise InstanceNotFoundError(f"no domain {name} to resume", instance=name)
        self.conn.call("resume", lambda c: bring_up(dom), instance=name, timeout_s=self.slow_timeout_s)

    def close(self) -> None:
        self.conn.close()
