"""``LibvirtProvider``: every instance is a libvirt domain over a qcow2 overlay of vmscale's image.

Files per instance (``<state_dir>/libvirt/``, or ``/var/lib/vmscale/instances/<id>`` when the state
folder is not reachable by the ``libvirt-qemu`` user, e.g. under a 0700 home or pytest's tmp)::

    overlays/NAME.qcow2   linked clone of the base image (deleted by terminate)
    seeds/NAME.iso        cloud-init seed, boot = "disk" only (deleted by terminate)
    console/NAME.log      serial console; kept after terminate so a failed boot can be read
                          (the previous one is rotated to NAME.log.1 at the next launch)

Idempotence: the domain name is the instance name. ``launch`` looks it up first and finishes what
it finds (defined but not started, saved, paused); the overlay is created under a temporary name
and renamed, so a crash never leaves a half-written overlay that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import libvirt
import psutil

from vmscale.clock import Clock, SystemClock
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.errors import InstanceNotFoundError, PermanentProviderError, TemporaryProviderError
from vmscale.providers.base import (
    InstanceSpec,
    ProviderInstance,
    ProviderStatus,
    WarmKind,
    warm_kinds_of,
)
from vmscale.providers.libvirt import xml
from vmscale.providers.libvirt.accel import AccelChoice, choose_accel
from vmscale.providers.libvirt.connection import LibvirtConnection
from vmscale.providers.libvirt.host import HostLoad, headroom_problem
from vmscale.providers.libvirt.image import DEFAULT_IMAGE_DIR, load_manifest
from vmscale.providers.libvirt.seed import make_seed_iso
from vmscale.providers.libvirt.stats import CpuReading, CpuTracker, fetch_cpu

log = logging.getLogger(__name__)

_STATE = {
    libvirt.VIR_DOMAIN_NOSTATE: ProviderStatus.STARTING,
    libvirt.VIR_DOMAIN_RUNNING: ProviderStatus.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: ProviderStatus.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: ProviderStatus.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: ProviderStatus.STOPPED,
    libvirt.VIR_DOMAIN_SHUTOFF: ProviderStatus.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: ProviderStatus.STOPPED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: ProviderStatus.PAUSED,
}
# vmscale never makes NVRAM or TPM state; managed-save images and snapshot metadata it may.
_UNDEFINE = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA


def _reachable_by_others(path: Path) -> bool:
    """True when every ancestor of ``path`` lets 'other' users traverse it (QEMU runs as libvirt-qemu)."""
    return all(not (p.exists() and not p.stat().st_mode & stat.S_IXOTH) for p in [path, *path.parents])


def _status(dom: libvirt.virDomain) -> ProviderStatus:
    state, _reason = dom.state()
    status = _STATE.get(state, ProviderStatus.STOPPED)
    if status is ProviderStatus.STOPPED and dom.hasManagedSaveImage():
        return ProviderStatus.SAVED
    return status


def _leased_address(dom: libvirt.virDomain) -> str:
    """The guest's IPv4 address from the libvirt network's DHCP leases ('' when not known yet)."""
    try:
        ifaces = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
    except libvirt.libvirtError:
        return ""
    for iface in (ifaces or {}).values():
        for addr in iface.get("addrs") or []:
            if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                return str(addr["addr"])
    return ""


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
        connection: LibvirtConnection | None = None,
        accel: AccelChoice | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.conn = connection or LibvirtConnection(config.uri, config.call_timeout_s)
        self.accel = accel or choose_accel(config.accel)
        self.image_dir = Path(config.image_dir) if config.image_dir else DEFAULT_IMAGE_DIR
        base = Path(state_dir).resolve() / "libvirt"
        if config.instance_dir:
            base = Path(config.instance_dir)
        elif not _reachable_by_others(base.parent):
            digest = hashlib.sha256(str(base).encode()).hexdigest()[:10]
            fallback = Path("/var/lib/vmscale/instances") / digest
            log.info("%s is not reachable by the QEMU user; instance files go to %s", base, fallback)
            base = fallback
        self.files_dir = base
        for sub in ("overlays", "seeds", "console"):
            (base / sub).mkdir(parents=True, exist_ok=True)
            (base / sub).chmod(0o755)
        base.chmod(0o755)
        self._tracker = CpuTracker()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---------------------------------------------------------------- paths and helpers
    def overlay_path(self, name: str) -> Path:
        return self.files_dir / "overlays" / f"{name}.qcow2"

    def seed_path(self, name: str) -> Path:
        return self.files_dir / "seeds" / f"{name}.iso"

    def console_log(self, name: str) -> Path:
        return self.files_dir / "console" / f"{name}.log"

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def _port(self, spec: InstanceSpec) -> int:
        return spec.port or self.config.base_port + spec.index

    def _endpoint(self, port: int) -> str:
        return f"http://127.0.0.1:{port}" if self.config.network == "user" else ""

    def _lookup(self, name: str) -> libvirt.virDomain | None:
        def find(conn: libvirt.virConnect) -> libvirt.virDomain | None:
            try:
                return conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise

        return self.conn.call("lookup", find, instance=name)

    def _instance(
        self, meta: xml.InstanceMeta, status: ProviderStatus, vcpus: int, **extra: str
    ) -> ProviderInstance:
        details = {
            "overlay": str(self.overlay_path(meta.name)),
            "console_log": str(self.console_log(meta.name)),
            "port": str(meta.port),
            "accel": self.accel.accel,
            "epoch": str(meta.epoch),
            **extra,
        }
        endpoint = self._endpoint(meta.port) or extra.get("endpoint", "")
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
    def _check_headroom(self, spec: InstanceSpec) -> None:
        def running_vcpus(conn: libvirt.virConnect) -> int:
            doms = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            return sum(int(d.info()[3]) for d in doms)

        load = HostLoad(
            available_memory_mb=psutil.virtual_memory().available / 2**20,
            host_cpus=os.cpu_count() or 1,
            running_vcpus=self.conn.call("count vCPUs", running_vcpus),
        )
        problem = headroom_problem(
            load,
            memory_mb=spec.memory_mb,
            vcpus=spec.vcpus,
            min_free_memory_mb=self.config.min_free_memory_mb,
            max_vcpu_overcommit=self.config.max_vcpu_overcommit,
        )
        if problem:
            raise TemporaryProviderError(f"not starting {spec.name}: {problem}", instance=spec.name)

    def _make_overlay(self, name: str, backing: Path) -> None:
        overlay = self.overlay_path(name)
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

    def _domain_spec(self, spec: InstanceSpec, port: int) -> xml.DomainSpec:
        meta = xml.InstanceMeta(spec.group, spec.name, spec.index, port, self.clock.now(), spec.epoch)
        common = {
            "meta": meta,
            "domain_type": self.accel.domain_type,
            "vcpus": spec.vcpus,
            "memory_mb": spec.memory_mb,
            "disk_path": str(self.overlay_path(spec.name)),
            "console_log": str(self.console_log(spec.name)),
            "network": self.config.network,
            "host_port": port,
            "guest_port": self.config.guest_port,
            "network_name": self.config.network_name,
            "bridge": self.config.bridge,
        }
        if self.config.boot == "disk":
            return xml.DomainSpec(boot="disk", seed_iso=str(self.seed_path(spec.name)), **common)  # type: ignore[arg-type]
        manifest = load_manifest(self.image_dir)
        return xml.DomainSpec(
            boot="kernel",
            kernel=str(manifest.path(self.image_dir, "kernel")),
            initrd=str(manifest.path(self.image_dir, "initrd")),
            kernel_args=dict(spec.workload_args),
            **common,  # type: ignore[arg-type]
        )

    def _backing(self) -> Path:
        if self.config.boot == "disk":
            if not self.config.cloud_image or not Path(self.config.cloud_image).is_file():
                raise PermanentProviderError(
                    f"boot = disk needs provider.libvirt.cloud_image (got {self.config.cloud_image!r})"
                )
            return Path(self.config.cloud_image)
        return load_manifest(self.image_dir).path(self.image_dir, "disk")

    def launch(self, spec: InstanceSpec) -> ProviderInstance:
        port = self._port(spec)
        with self._lock(spec.name):
            dom = self._lookup(spec.name)
            if dom is not None and self.config.boot == "kernel" and not self.overlay_path(spec.name).exists():
                # Its disk is gone (deleted by hand?): the domain cannot boot; remake it from scratch
                # (only if it is ours: _adopt refuses foreign domains before anything is touched).
                self._adopt_check(dom, spec)
                self._remove_domain(spec.name, graceful_timeout_s=0)
                dom = None
            if dom is not None:
                return self._adopt(dom, spec)
            self._check_headroom(spec)
            backing = self._backing()
            self._make_overlay(spec.name, backing)
            if self.config.boot == "disk" and not self.seed_path(spec.name).exists():
                user_data = (
                    Path(self.config.user_data).read_text() if self.config.user_data else "#cloud-config\n"
                )
                make_seed_iso(
                    self.seed_path(spec.name), user_data=user_data, instance_id=spec.name, hostname=spec.name
                )
            log_path = self.console_log(spec.name)
            if log_path.exists():
                log_path.replace(log_path.with_suffix(".log.1"))
            try:
                domain_xml = xml.build_domain_xml(self._domain_spec(spec, port))
            except ValueError as exc:
                raise PermanentProviderError(
                    f"bad instance spec for {spec.name}: {exc}", instance=spec.name
                ) from exc

            def define_and_start(conn: libvirt.virConnect) -> str:
                new = conn.defineXML(domain_xml)
                new.create()
                return str(new.UUIDString())

            uuid = self.conn.call("define+start", define_and_start, instance=spec.name)
            meta = xml.InstanceMeta(spec.group, spec.name, spec.index, port, self.clock.now(), spec.epoch)
            log.info("launched %s (%s, port %d)", spec.name, self.accel.accel, port)
            return self._instance(meta, ProviderStatus.RUNNING, spec.vcpus, uuid=uuid)

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

        def finish(conn: libvirt.virConnect) -> tuple[ProviderStatus, int, str]:
            status = _status(dom)
            if status is ProviderStatus.PAUSED:
                dom.resume()
            elif status in (ProviderStatus.STOPPED, ProviderStatus.SAVED, ProviderStatus.STARTING):
                dom.create()
            return ProviderStatus.RUNNING, int(dom.info()[3]), str(dom.UUIDString())

        status, vcpus, uuid = self.conn.call(
            "adopt", finish, instance=spec.name, timeout_s=self._slow_timeout
        )
        log.info("adopted existing domain %s", spec.name)
        return self._instance(found, status, vcpus, uuid=uuid)

    @property
    def _slow_timeout(self) -> float:
        """Start from a managed save restores memory from disk: give it longer than a plain call."""
        return max(self.config.call_timeout_s, 120.0)

    # ---------------------------------------------------------------- terminate
    def _remove_domain(self, name: str, *, graceful_timeout_s: float) -> None:
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

        def destroy_and_undefine(conn: libvirt.virConnect) -> None:
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(_UNDEFINE)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise

        self.conn.call("destroy+undefine", destroy_and_undefine, instance=name)

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0) -> None:
        with self._lock(name):
            with contextlib.suppress(InstanceNotFoundError):
                self._remove_domain(name, graceful_timeout_s=graceful_timeout_s)
            self._tracker.forget(name)
            for path in (
                self.overlay_path(name),
                self.overlay_path(name).with_suffix(".partial"),
                self.seed_path(name),
            ):
                path.unlink(missing_ok=True)
            log.info("terminated %s", name)

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
                    status = _status(dom)
                    vcpus = int(dom.info()[3])
                    address = ""
                    if self.config.network != "user" and status is ProviderStatus.RUNNING:
                        address = _leased_address(dom)
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
            self._instance(m, s, v, uuid=u, **({"endpoint": f"http://{a}:{port}", "address": a} if a else {}))
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
                pct = self._tracker.update(name, CpuReading(cpu_ns, now, vcpus))
                if pct is not None:
                    out[name] = pct
        return out

    # ---------------------------------------------------------------- warm pool
    def pause(self, name: str, kind: WarmKind = "paused") -> None:
        dom = self._lookup(name)
        if dom is None:
            raise InstanceNotFoundError(f"no domain {name} to pause", instance=name)
        if kind == "saved":
            self.conn.call(
                "managed save", lambda c: dom.managedSave(0), instance=name, timeout_s=self._slow_timeout
            )
        else:
            self.conn.call("suspend", lambda c: dom.suspend(), instance=name)
        self._tracker.forget(name)

    def resume(self, name: str) -> None:
        dom = self._lookup(name)
        if dom is None:
            raise InstanceNotFoundError(f"no domain {name} to resume", instance=name)

        def wake(conn: libvirt.virConnect) -> None:
            status = _status(dom)
            if status is ProviderStatus.PAUSED:
                dom.resume()
            elif status in (ProviderStatus.SAVED, ProviderStatus.STOPPED):
                dom.create()

        self.conn.call("resume", wake, instance=name, timeout_s=self._slow_timeout)

    def close(self) -> None:
        self.conn.close()
