"""Instance files on a host vmscale reaches only through libvirt: storage pools and volumes.

On a remote host vmscale cannot run ``qemu-img`` or open files, so everything goes through
libvirt's storage API, on the host itself:

* **Overlays and seed ISOs** live in a ``dir`` pool (``provider.libvirt.storage_pool``, folder
  ``storage_path``, the same path on every host so a migrated domain's disk path stays valid).
  vmscale defines, builds and starts it when it is missing (and marks it autostart).
  An overlay is a qcow2 volume whose backing store is the image's base disk; a seed ISO is uploaded
  through a libvirt stream.
* **The image** (base disk, kernel, initrd) must already be on every host at
  ``provider.libvirt.image_dir`` — a shared read-only export or a copy made by the operator. A second
  ``dir`` pool over that folder lets vmscale check that it is there (and read the disk's size) before
  it defines a domain that would not start; the error says which host lacks which file.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import libvirt

from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt.connection import BoundedCalls

CHUNK = 256 * 1024


def _pool_xml(name: str, path: str) -> str:
    return (
        f"<pool type='dir'><name>{escape(name)}</name>"
        f"<target><path>{escape(path)}</path><permissions><mode>0755</mode></permissions></target></pool>"
    )


def _find_or_make_pool(conn: libvirt.virConnect, name: str, path: str) -> libvirt.virStoragePool:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise
        pool = conn.storagePoolDefineXML(_pool_xml(name, path), 0)
        pool.build(0)
        pool.setAutostart(1)
    if not pool.isActive():
        pool.create(0)
    return pool


def image_pool_name(image_dir: str) -> str:
    """One pool per image folder (several groups may use different images)."""
    return "vmscale-image-" + hashlib.sha256(image_dir.encode()).hexdigest()[:8]


class PoolStorage:
    """The vmscale pool and the image pool of one host, over its connection."""

    def __init__(self, host: str, conn: BoundedCalls, *, pool: str, path: str, image_dir: str) -> None:
        self.host = host
        self.conn = conn
        self.pool = pool
        self.dir = path.rstrip("/")
        self.image_dir = image_dir.rstrip("/")

    def path(self, volume: str) -> str:
        return f"{self.dir}/{volume}"

    def _pool(self, conn: libvirt.virConnect) -> libvirt.virStoragePool:
        return _find_or_make_pool(conn, self.pool, self.dir)

    def exists(self, volume: str) -> bool:
        def look(conn: libvirt.virConnect) -> bool:
            try:
                self._pool(conn).storageVolLookupByName(volume)
                return True
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                    return False
                raise

        return self.conn.call("look up volume", look, instance=volume)

    def image_capacity(self, files: list[str]) -> int:
        """Check the image files are on the host; returns the base disk's (first file's) virtual size."""

        def check(conn: libvirt.virConnect) -> int:
            pool = _find_or_make_pool(conn, image_pool_name(self.image_dir), self.image_dir)
            pool.refresh(0)  # a rebuilt image has new file names
            have = set(pool.listVolumes())
            missing = [f for f in files if f not in have]
            if missing:
                raise PermanentProviderError(
                    f"host {self.host} lacks the guest image files {', '.join(missing)} in "
                    f"{self.image_dir}: copy the image folder there (or mount the shared export)"
                )
            return int(pool.storageVolLookupByName(files[0]).info()[1])

        return self.conn.call("check image", check)

    def create_overlay(self, volume: str, backing: str, capacity: int) -> str:
        """A qcow2 volume over ``backing``; an existing one is kept (an earlier attempt made it)."""
        doc = (
            f"<volume><name>{escape(volume)}</name><capacity unit='bytes'>{capacity}</capacity>"
            "<target><format type='qcow2'/><permissions><mode>0644</mode></permissions></target>"
            f"<backingStore><path>{escape(backing)}</path><format type='qcow2'/></backingStore></volume>"
        )

        def make(conn: libvirt.virConnect) -> str:
            pool = self._pool(conn)
            try:
                return str(pool.storageVolLookupByName(volume).path())
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
            return str(pool.createXML(doc, 0).path())

        return self.conn.call("create overlay", make, instance=volume)

    def upload(self, volume: str, data: bytes) -> None:
        """Write ``data`` as a raw volume (a seed ISO), replacing any earlier one."""
        doc = (
            f"<volume><name>{escape(volume)}</name><capacity unit='bytes'>{len(data)}</capacity>"
            "<target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>"
        )

        def put(conn: libvirt.virConnect) -> None:
            pool = self._pool(conn)
            try:
                pool.storageVolLookupByName(volume).delete(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
            vol = pool.createXML(doc, 0)
            stream = conn.newStream(0)
            vol.upload(stream, 0, len(data), 0)
            for start in range(0, len(data), CHUNK):
                stream.send(data[start : start + CHUNK])
            stream.finish()

        self.conn.call("upload volume", put, instance=volume)

    def read(self, volume: str) -> bytes:
        """The bytes of a (small) volume, e.g. a seed ISO to copy to another host."""

        def get(conn: libvirt.virConnect) -> bytes:
            vol = self._pool(conn).storageVolLookupByName(volume)
            stream = conn.newStream(0)
            vol.download(stream, 0, 0, 0)
            parts = []
            while True:
                chunk = stream.recv(CHUNK)
                if not chunk:
                    break
                parts.append(chunk)
            stream.finish()
            return b"".join(parts)

        return self.conn.call("read volume", get, instance=volume)

    def delete(self, volume: str) -> None:
        """Remove a volume; missing is success."""

        def drop(conn: libvirt.virConnect) -> None:
            try:
                self._pool(conn).storageVolLookupByName(volume).delete(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise

        self.conn.call("delete volume", drop, instance=volume)

    def allocation(self, volume: str) -> int:
        """Bytes the volume really holds (for an overlay: what a migration copies of it)."""

        def info(conn: libvirt.virConnect) -> int:
            pool = self._pool(conn)
            pool.refresh(0)
            return int(pool.storageVolLookupByName(volume).info()[2])

        return self.conn.call("volume info", info, instance=volume)

    def backing_of(self, volume: str) -> tuple[str, int]:
        """(backing file, capacity) of an overlay, read from its volume XML."""

        def read_xml(conn: libvirt.virConnect) -> str:
            return str(self._pool(conn).storageVolLookupByName(volume).XMLDesc(0))

        root = ET.fromstring(self.conn.call("read volume", read_xml, instance=volume))
        return root.findtext("backingStore/path", ""), int(root.findtext("capacity", "0"))
