"""Snapshot clones: launch an instance by restoring a saved, already booted guest instead of booting.

Under TCG a cold boot serves after ~6-7 s (the kernel and Python's imports in a slow guest); a
restore of a guest that has already done all of that serves in about a second (BENCHMARKS.md).

**The golden snapshot**, one per group and per everything the guest's memory depends on (image,
vCPUs and their room, memory, guest port, workload options, accelerator: ``golden_key``). A domain
``GROUP-golden`` is booted once from its own overlay ``disk.qcow2`` of the image, its backend told
to start *without a name* (``--identity push``). Once the backend answers (503 "unassigned": imports
done, pool warm) the domain is saved with ``virDomainSave`` to ``memory.sav``, which stops it;
``disk.qcow2`` is from then on read-only, the disk state that goes with that memory. ``golden.json``
is written last, so a half-made golden is never used (it is made again).

**A clone** gets its own overlay on ``disk.qcow2`` (clones share the golden disk read-only) and the
golden domain XML rewritten with its own name, UUID, metadata, overlay, console and loopback port
(``restore.py``), restored through a FIFO (no copy of the memory image), then defined persistent
(so a warm pool may managed-save it and a host restart keeps it defined). Last, the provider tells
the guest who it is: ``PUT /_vmscale/identity`` on the clone's own port, with the golden's token and
the host's clock. Until then its backend answered 503 to everything, so a clone never serves under
another name, and fails health checks until it has its own.

Why a push over the forwarded port rather than something the guest reads: after a restore the
kernel command line, SMBIOS tables and all of memory are the golden's; an fw_cfg entry or a
virtio-serial channel would need a guest daemon that notices the restore, plus a kernel module in
the initrd. The provider knows when the restore is done and the port is already there: one call.

**Clean-up.** ``terminate`` removes a clone's domain and overlay like any instance's (a clone has no
save image of its own: the FIFO is removed once restored). A golden whose key is no longer wanted
(the image changed...) is removed once no overlay is backed by it, checked whenever a golden is
made and when an instance is terminated; ``drop`` removes all of a group's goldens.

Limits: user-mode networking only (on a bridge a clone would come back with the golden's MAC and
DHCP lease); raw save images; vmscale must be able to read what libvirtd saved (it runs as root).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import httpx
import libvirt

from vmscale.clock import Clock
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.errors import PermanentProviderError, TemporaryProviderError
from vmscale.ports import free_port
from vmscale.providers.base import GoldenSnapshot, InstanceSpec, ProviderInstance, ProviderStatus
from vmscale.providers.libvirt import xml as domxml
from vmscale.providers.libvirt.accel import AccelChoice
from vmscale.providers.libvirt.connection import BoundedCalls
from vmscale.providers.libvirt.image import load_manifest
from vmscale.providers.libvirt.resize import MemoryFollowsVcpus
from vmscale.providers.libvirt.restore import clone_domain_xml, restore_through_fifo
from vmscale.providers.libvirt.saveimage import read_save_image


class CloneHost(Protocol):
    """What cloning needs of the libvirt provider it belongs to (the provider plays this role; a
    Protocol here keeps this module from importing the provider, which imports it)."""

    config: LibvirtProviderConfig
    conn: BoundedCalls
    accel: AccelChoice
    clock: Clock
    files_dir: Path
    image_dir: Path
    max_vcpus: int | None
    memory_room: MemoryFollowsVcpus | None

    @property
    def slow_timeout_s(self) -> float: ...

    def overlay_path(self, name: str) -> Path: ...

    def console_log(self, name: str) -> Path: ...

    def backing_image(self) -> Path: ...

    def make_overlay(self, name: str, backing: Path, *, overlay: Path | None = None) -> None: ...

    def domain_spec(self, spec: InstanceSpec, port: int) -> domxml.DomainSpec: ...

    def remove_domain(self, name: str, *, graceful_timeout_s: float) -> None: ...

    def instance_of(
        self, meta: domxml.InstanceMeta, status: ProviderStatus, vcpus: int, **extra: str
    ) -> ProviderInstance: ...


log = logging.getLogger(__name__)
IDENTITY_PATH = "/_vmscale/identity"
IDENTITY_TIMEOUT_S = 15.0


def _loopback_client(timeout_s: float) -> httpx.Client:
    """A client for plain HTTP to a guest's loopback port forward. ``verify=False`` because no TLS
    is ever spoken there, and building the default certificate store costs 17-37 ms on this
    machine, which the identity push would add to every clone's time to serving."""
    return httpx.Client(timeout=timeout_s, trust_env=False, verify=False)


@dataclass(frozen=True, slots=True)
class Golden:
    """A group's golden snapshot on disk (``golden.json``)."""

    key: str
    dir: str
    token: str
    created_at: float
    boot_s: float  # define to the backend answering, while the golden was made
    save_s: float  # virDomainSave

    @property
    def disk(self) -> Path:
        return Path(self.dir) / "disk.qcow2"

    @property
    def memory(self) -> Path:
        return Path(self.dir) / "memory.sav"

    def summary(self, *, made_now: bool) -> GoldenSnapshot:
        """What operators see of it (``vmscale status``, the ``golden`` event): no token."""
        try:
            size_mb = round(self.memory.stat().st_size / 2**20, 1)
        except OSError:
            size_mb = 0.0
        return GoldenSnapshot(self.key, self.created_at, size_mb, self.boot_s, self.save_s, made_now)


def load_golden(directory: Path) -> Golden | None:
    """The golden in ``directory`` if it is complete (its record and both files exist)."""
    try:
        golden = Golden(**json.loads((directory / "golden.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return golden if golden.disk.is_file() and golden.memory.is_file() else None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Across processes too: one at a time makes or removes a group's goldens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class CloneLauncher:
    """Makes goldens and clones for a ``LibvirtProvider`` (seen as a ``CloneHost``). Part of the
    provider's implementation: it uses the provider's connection, paths, overlay maker and domain
    builder, so the way an instance is made is written once."""

    def __init__(self, provider: CloneHost) -> None:
        self.p = provider
        self.root = provider.files_dir / "golden"
        self.fifo_dir = provider.files_dir / "restore"
        for d in (self.root, self.fifo_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _group_lock(self, group: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(group, threading.Lock())

    # ------------------------------------------------------------------ golden
    def key(self, spec: InstanceSpec) -> str:
        parts = {
            "image": load_manifest(self.p.image_dir).hash,
            "vcpus": spec.vcpus,
            "max_vcpus": max(spec.vcpus, self.p.max_vcpus or 0),
            "memory_mb": spec.memory_mb,
            "memory_room": repr(self.p.memory_room),
            "guest_port": self.p.config.guest_port,
            "workload": dict(sorted(spec.workload_args.items())),
            "domain_type": self.p.accel.domain_type,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]

    def golden(self, spec: InstanceSpec) -> Golden:
        """The group's golden for this spec, made now (boot + save, tens of seconds) if missing."""
        return self._find_or_make(spec)[0]

    def prepare(self, spec: InstanceSpec) -> GoldenSnapshot:
        """The golden made ahead of the first clone (``Cloner.prepare``), as operators see it."""
        golden, made_now = self._find_or_make(spec)
        return golden.summary(made_now=made_now)

    def _find_or_make(self, spec: InstanceSpec) -> tuple[Golden, bool]:
        gdir = self.root / spec.group / self.key(spec)
        found = load_golden(gdir)
        if found is not None:
            return found, False
        with self._group_lock(spec.group), _file_lock(self.root / spec.group / ".lock"):
            found = load_golden(gdir)
            made_now = found is None
            if found is None:
                found = self._make_golden(spec, gdir)
        self.collect()
        return found, made_now

    def _make_golden(self, spec: InstanceSpec, gdir: Path) -> Golden:
        shutil.rmtree(gdir, ignore_errors=True)
        gdir.mkdir(parents=True)
        gdir.chmod(0o755)
        name, token, port = f"{spec.group}-golden", secrets.token_hex(16), free_port()
        self._destroy(name)  # left by a run that died while making one
        golden = Golden(gdir.name, str(gdir), token, time.time(), 0.0, 0.0)
        self.p.make_overlay(name, self.p.backing_image(), overlay=golden.disk)
        args = {**spec.workload_args, "identity": "push", "identity_token": token}
        dspec = self.p.domain_spec(replace(spec, name=name, index=0, workload_args=args), port)
        document = domxml.build_domain_xml(
            replace(dspec, meta=replace(dspec.meta, group=f"{spec.group}.golden"), disk_path=str(golden.disk))
        )
        started = time.monotonic()
        dom = self.p.conn.call("create golden", lambda c: c.createXML(document, 0), instance=name)
        try:
            self._wait_unassigned(name, port)
            booted = time.monotonic()
            self.p.conn.call(
                "save golden",
                lambda c: dom.save(str(golden.memory)),
                instance=name,
                timeout_s=self.p.slow_timeout_s,
            )
            saved = time.monotonic()
            read_save_image(golden.memory)  # a format vmscale cannot rewrite fails here, once, clearly
        except BaseException:
            self._destroy(name)
            shutil.rmtree(gdir, ignore_errors=True)
            raise
        golden = replace(golden, boot_s=round(booted - started, 3), save_s=round(saved - booted, 3))
        tmp = gdir / "golden.json.tmp"
        tmp.write_text(json.dumps(asdict(golden), indent=1))
        tmp.replace(gdir / "golden.json")
        size = golden.memory.stat().st_size / 2**20
        log.info("golden snapshot for %s: booted in %.1f s, saved %.0f MiB in %.1f s", spec.group,
                 golden.boot_s, size, golden.save_s)  # fmt: skip
        return golden

    def _wait_unassigned(self, name: str, port: int) -> None:
        """Until the golden's backend answers "no name yet": booted, imports done, pool warm."""
        deadline = time.monotonic() + self.p.config.golden_boot_timeout_s
        last = "no answer"
        with _loopback_client(2.0) as http:
            while time.monotonic() < deadline:
                try:
                    resp = http.get(f"http://127.0.0.1:{port}/healthz")
                    if (
                        resp.status_code == 503
                        and resp.json().get("detail", {}).get("status") == "unassigned"
                    ):
                        return
                    last = f"HTTP {resp.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    last = type(exc).__name__
                time.sleep(0.2)
        raise TemporaryProviderError(
            f"golden {name} did not come up within {self.p.config.golden_boot_timeout_s:g} s ({last}); "
            f"see {self.p.console_log(name)}",
            instance=name,
        )

    def _destroy(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.p.remove_domain(name, graceful_timeout_s=0)

    # ------------------------------------------------------------------ clones
    def launch(self, spec: InstanceSpec, port: int) -> ProviderInstance:
        """Restore a clone of the group's golden as ``spec.name`` on ``port``, and name it."""
        golden = self.golden(spec)
        # No domain of this name exists (the provider adopts one that does), so an overlay left by an
        # interrupted launch was never written to; it may be backed by an older golden: start afresh.
        self.p.overlay_path(spec.name).unlink(missing_ok=True)
        self.p.make_overlay(spec.name, golden.disk)
        image = read_save_image(golden.memory)
        meta = domxml.InstanceMeta(
            spec.group, spec.name, spec.index, port, self.p.clock.now(), epoch=spec.epoch
        )
        document = clone_domain_xml(
            image.xml,
            meta=meta,
            disk_path=str(self.p.overlay_path(spec.name)),
            console_log=str(self.p.console_log(spec.name)),
            guest_port=self.p.config.guest_port,
        )

        def restore(path: str) -> None:
            self.p.conn.call(
                "restore clone", lambda c: c.restoreFlags(path, None, 0), instance=spec.name,
                timeout_s=self.p.slow_timeout_s,
            )  # fmt: skip

        restore_through_fifo(self.fifo(spec.name), image, document, restore, self.p.slow_timeout_s)

        def persist(conn: libvirt.virConnect) -> str:
            dom = conn.lookupByName(spec.name)
            conn.defineXML(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
            return str(dom.UUIDString())

        uuid = self.p.conn.call("define clone", persist, instance=spec.name)
        self.push_identity(spec.name, port, golden.token)
        log.info("cloned %s from golden %s (port %d)", spec.name, golden.key, port)
        return self.p.instance_of(meta, ProviderStatus.RUNNING, spec.vcpus, uuid=uuid, golden=golden.key)

    def fifo(self, name: str) -> Path:
        return self.fifo_dir / f"{name}.fifo"

    def push_identity(self, name: str, port: int, token: str) -> bool:
        """Tell a restored guest its name (and the time). False: it is not a clone (booted)."""
        url = f"http://127.0.0.1:{port}{IDENTITY_PATH}"
        deadline = time.monotonic() + IDENTITY_TIMEOUT_S
        last = "no answer"
        with _loopback_client(3.0) as http:
            while time.monotonic() < deadline:
                try:
                    resp = http.put(url, json={"name": name, "token": token, "time": time.time()})
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                    time.sleep(0.02)
                    continue
                if resp.status_code == 200:
                    return True
                if resp.status_code in (404, 405):
                    return False
                if resp.status_code in (403, 409):
                    raise PermanentProviderError(
                        f"{name} refused its identity: {resp.text[:200]}", instance=name
                    )
                last = f"HTTP {resp.status_code}"
                time.sleep(0.05)
        raise TemporaryProviderError(
            f"{name} was restored but did not take its name within {IDENTITY_TIMEOUT_S:g} s ({last})",
            instance=name,
        )

    def adopt(self, spec: InstanceSpec, port: int) -> None:
        """A launch found the domain already there: if it is a clone that never got its name, name it."""
        golden = load_golden(self.root / spec.group / self.key(spec))
        if golden is not None:
            self.push_identity(spec.name, port, golden.token)

    # ------------------------------------------------------------------ clean-up
    def collect(self) -> None:
        """Remove goldens no longer wanted: not the newest of their group, and backing no overlay."""
        groups = [g for g in self.root.iterdir() if g.is_dir()] if self.root.is_dir() else []
        stale = []
        for group in groups:
            goldens = sorted((g for g in group.iterdir() if g.is_dir()), key=lambda g: g.stat().st_mtime)
            stale += goldens[:-1]
        if not stale:
            return
        in_use = self._backing_dirs()
        if in_use is None:
            return  # cannot tell which are used: keep them all until next time
        for gdir in stale:
            if gdir not in in_use:
                with _file_lock(gdir.parent / ".lock"):
                    shutil.rmtree(gdir, ignore_errors=True)
                log.info("removed unused golden snapshot %s", gdir)

    def _backing_dirs(self) -> set[Path] | None:
        """Folders holding a backing file of some overlay (None when an overlay cannot be read)."""
        used = set()
        for overlay in (self.p.files_dir / "overlays").glob("*.qcow2"):
            try:
                out = subprocess.run(
                    ["qemu-img", "info", "--output=json", "-U", str(overlay)],
                    capture_output=True, text=True, check=True, timeout=self.p.config.overlay_timeout_s,
                ).stdout  # fmt: skip
                backing = json.loads(out).get("backing-filename", "")
            except (OSError, subprocess.SubprocessError, ValueError):
                return None
            if backing:
                used.add(Path(backing).parent)
        return used

    def drop(self, group: str) -> None:
        """Remove all of a group's goldens (when the group itself is removed)."""
        with self._group_lock(group):
            self._destroy(f"{group}-golden")
            shutil.rmtree(self.root / group, ignore_errors=True)
