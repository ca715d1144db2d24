"""libvirt's QEMU save image: read its header and domain XML, write a copy that carries another XML.

Why: libvirt 9.0 refuses every supported way to restore one saved domain as another —
``virsh restore --xml`` with another UUID ("Target domain uuid ... does not match source") and
``save-image-define`` with another name or UUID (libvirt's ABI check compares both). The domain
XML libvirt restores from is, however, stored in the image itself, ahead of QEMU's migration
stream, which does not contain the name, the UUID, the disk paths or the port forward (those are
on QEMU's command line, which libvirt builds from that XML). A copy of the image whose XML names
the clone is restored as the clone.

The layout (libvirt ``src/qemu/qemu_saveimage.h``, ``virQEMUSaveHeader``, version 2), in the host's
byte order::

    char     magic[16]       "LibvirtQemudSave" ("LibvirtQemudPart" while being written)
    uint32   version         2
    uint32   data_len        bytes of the data area that follows the header
    uint32   was_running     1: start the CPUs after restore
    uint32   format          0 raw; 1.. compressed (gzip, bzip2, xz, lzop, zstd)
    uint32   cookieOffset    where the save cookie starts in the data area (0: no cookie)
    uint32   unused[14]
    data area (data_len bytes): domain XML + NUL, [cookie + NUL at cookieOffset], NUL padding
    QEMU migration stream ("QEVM"...) to the end of the file

libvirt pads the data area by 64 KiB when it writes it, so an edited XML of about the same size
fits without moving the stream: a rewritten header keeps ``data_len``, so the stream that follows is
the golden image's, byte for byte, at the same offset. Any other version, a compressed format, or
an XML that does not fit is refused with an error that says so; nothing guesses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from vmscale.errors import PermanentProviderError

MAGIC = b"LibvirtQemudSave"
PARTIAL = b"LibvirtQemudPart"
VERSION = 2
RAW = 0
_LAYOUT = {"<": struct.Struct("<16s19I"), ">": struct.Struct(">16s19I")}
HEADER_SIZE = _LAYOUT["<"].size  # 92
MAX_DATA_LEN = 16 * 2**20  # a domain XML is kilobytes; anything near this is not a save image
STREAM_MAGIC = b"QEVM"


class SaveImageError(PermanentProviderError):
    """The file is not a save image vmscale can rewrite; the message says what was found."""


@dataclass(frozen=True, slots=True)
class SaveImage:
    """What a save image's header and data area hold, and where QEMU's stream starts."""

    path: Path
    order: str  # "<" or ">": the byte order the header was written in
    fields: tuple[int, ...]  # the 19 uint32 after the magic, as read
    xml: str
    cookie: bytes  # without its NUL ('' when there is none)

    @property
    def data_len(self) -> int:
        return self.fields[1]

    @property
    def stream_offset(self) -> int:
        return HEADER_SIZE + self.data_len


def read_save_image(path: Path) -> SaveImage:
    """Parse the header and data area of ``path``; ``SaveImageError`` when it is not one we know."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                raise SaveImageError(f"{path}: {len(head)} bytes, shorter than a save image header")
            magic = head[:16]
            if magic == PARTIAL:
                raise SaveImageError(f"{path}: an incomplete save image (the save did not finish)")
            if magic != MAGIC:
                raise SaveImageError(f"{path}: not a libvirt QEMU save image (magic {magic!r})")
            order, fields = _fields(head)
            version, data_len, _running, fmt, cookie_offset = fields[:5]
            if version != VERSION:
                raise SaveImageError(
                    f"{path}: save image version {version}; vmscale rewrites version {VERSION} only "
                    "(libvirt's qemu_saveimage.h changed: check its header layout before allowing it)"
                )
            if fmt != RAW:
                raise SaveImageError(
                    f"{path}: save image format {fmt} is compressed; snapshot clones need raw images "
                    '(set save_image_format = "raw" in /etc/libvirt/qemu.conf)'
                )
            if not 0 < data_len <= MAX_DATA_LEN or cookie_offset > data_len:
                raise SaveImageError(
                    f"{path}: implausible data area ({data_len} bytes, cookie at {cookie_offset})"
                )
            data = f.read(data_len)
            if len(data) < data_len or f.read(len(STREAM_MAGIC)) != STREAM_MAGIC:
                raise SaveImageError(f"{path}: no QEMU migration stream after the {data_len}-byte data area")
    except OSError as exc:
        raise SaveImageError(f"cannot read save image {path}: {exc.strerror or exc}") from exc
    xml_part = data[:cookie_offset] if cookie_offset else data
    cookie = data[cookie_offset:].split(b"\0", 1)[0] if cookie_offset else b""
    return SaveImage(path, order, fields, xml_part.split(b"\0", 1)[0].decode(), cookie)


def _fields(head: bytes) -> tuple[str, tuple[int, ...]]:
    """The header's integers, in whichever byte order gives a version libvirt could have written."""
    for order in ("<", ">"):
        values = _LAYOUT[order].unpack(head)[1:]
        if 0 < values[0] <= VERSION:
            return order, tuple(values)
    return "<", tuple(_LAYOUT["<"].unpack(head)[1:])


def header_with_xml(image: SaveImage, xml: str) -> bytes:
    """Header + data area of a copy of ``image`` that carries ``xml``; the stream follows unchanged.

    The data area keeps its length, so the copy's stream starts where the original's does.
    """
    xml_bytes = xml.encode() + b"\0"
    cookie = image.cookie + b"\0" if image.cookie else b""
    used = len(xml_bytes) + len(cookie)
    if used > image.data_len:
        raise SaveImageError(
            f"{image.path}: the clone's domain XML ({len(xml_bytes)} bytes) does not fit the image's "
            f"{image.data_len}-byte data area"
        )
    fields = list(image.fields)
    fields[4] = len(xml_bytes) if cookie else 0  # cookieOffset
    data = xml_bytes + cookie + b"\0" * (image.data_len - used)
    return _LAYOUT[image.order].pack(MAGIC, *fields) + data
