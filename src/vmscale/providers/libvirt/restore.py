"""Restore a save image as another domain: the clone's domain XML, and a FIFO instead of a copy.

``clone_domain_xml`` turns the golden domain's XML (as stored in its save image) into a clone's:
its own name, UUID, metadata, overlay, console log and loopback port forward (QEMU's ``hostfwd`` is
on its command line, not in the guest's memory). ``restore_through_fifo`` restores without copying
the image: libvirt reads a FIFO that a thread fills with the rewritten header (``saveimage.py``)
followed by the golden's migration stream (``os.sendfile``), so a clone costs no disk space and
no copy time for its memory. See ``clone.py`` for how clones are made and why.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from vmscale.errors import PermanentProviderError, TemporaryProviderError
from vmscale.providers.libvirt import xml as domxml
from vmscale.providers.libvirt.saveimage import SaveImage, header_with_xml

FIFO_OPEN_TIMEOUT_S = 30.0
PIPE_SIZE = 2**20  # /proc/sys/fs/pipe-max-size's default


def clone_domain_xml(
    golden_xml: str, *, meta: domxml.InstanceMeta, disk_path: str, console_log: str, guest_port: int
) -> str:
    """The golden's domain XML made into the clone's: name, UUID, metadata, disk, console, port.

    The kernel command line loses the golden's identity options, so that if the clone is ever
    booted cold (a reboot) it comes up under its own name like a booted instance.
    """
    root = ET.fromstring(golden_xml)
    _set_text(root, "name", meta.name)
    _set_text(root, "uuid", str(uuid.uuid4()))
    inst = root.find(f"metadata/{{{domxml.VMSCALE_NS}}}instance")
    if inst is None:
        raise PermanentProviderError("the golden domain XML has no vmscale metadata", instance=meta.name)
    inst.attrib.update(
        group=meta.group,
        name=meta.name,
        index=str(meta.index),
        port=str(meta.port),
        created=f"{meta.created_at:.3f}",
    )
    disk = root.find("devices/disk[@device='disk']/source")
    if disk is None:
        raise PermanentProviderError("the golden domain XML has no disk", instance=meta.name)
    disk.set("file", disk_path)
    for tag in ("serial", "console"):
        for source in root.findall(f"devices/{tag}/source"):
            source.set("path", console_log)
    cmdline = root.find("os/cmdline")
    if cmdline is not None and cmdline.text:
        words = [w for w in cmdline.text.split() if not w.startswith(("vmscale.identity", "vmscale.name="))]
        cmdline.text = " ".join([*words, f"vmscale.name={meta.name}"])
    forwarded = 0
    for arg in root.iter(f"{{{domxml.QEMU_NS}}}arg"):
        value = arg.get("value", "")
        if "hostfwd=tcp:127.0.0.1:" in value:
            head, _, rest = value.partition("hostfwd=tcp:127.0.0.1:")
            arg.set("value", f"{head}hostfwd=tcp:127.0.0.1:{meta.port}-:{guest_port}{_after_forward(rest)}")
            forwarded += 1
    if forwarded != 1:
        raise PermanentProviderError(
            "snapshot clones need user-mode networking with one loopback port forward", instance=meta.name
        )
    return ET.tostring(root, encoding="unicode")


def _set_text(root: ET.Element, tag: str, text: str) -> None:
    el = root.find(tag)
    if el is None:
        el = ET.SubElement(root, tag)
    el.text = text


def _after_forward(rest: str) -> str:
    """What follows ``HOSTPORT-:GUESTPORT`` in a netdev value (other options, if any)."""
    _, _, tail = rest.partition("-:")
    return tail[len(tail.split(",", 1)[0]) :]


def restore_through_fifo(
    fifo: Path, image: SaveImage, xml: str, restore: Callable[[str], None], timeout_s: float
) -> None:
    """Restore ``image`` carrying ``xml`` without copying it: libvirt reads a FIFO we fill.

    ``restore(path)`` is the libvirt call (bounded by the caller). A writer thread opens the FIFO
    non-blocking until libvirt opens it for reading (so a restore that fails before opening never
    leaves the thread blocked), then writes the new header and streams the rest of the golden.
    """
    header = header_with_xml(image, xml)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o600)
    failure: list[BaseException] = []
    stop = threading.Event()

    def feed() -> None:
        try:
            fd = _open_writer(fifo, stop)
            if fd is None:
                return
            try:
                os.set_blocking(fd, True)
                with contextlib.suppress(OSError):  # fewer, larger hand-overs to QEMU than 64 KiB
                    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
                _write_all(fd, header)
                with open(image.path, "rb") as src:
                    offset, end = image.stream_offset, os.fstat(src.fileno()).st_size
                    while offset < end:
                        sent = os.sendfile(fd, src.fileno(), offset, end - offset)
                        if sent == 0:
                            break
                        offset += sent
            finally:
                os.close(fd)
        except BrokenPipeError:
            pass  # libvirt stopped reading: its own error says why
        except OSError as exc:
            failure.append(exc)

    writer = threading.Thread(target=feed, name=f"restore:{fifo.name}", daemon=True)
    writer.start()
    try:
        restore(str(fifo))
    finally:
        stop.set()
        writer.join(timeout=timeout_s)
        fifo.unlink(missing_ok=True)
    if failure:
        raise TemporaryProviderError(f"feeding the restore of {fifo.stem} failed: {failure[0]}")


def _open_writer(fifo: Path, stop: threading.Event) -> int | None:
    deadline = time.monotonic() + FIFO_OPEN_TIMEOUT_S
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        stop.wait(0.005)
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
