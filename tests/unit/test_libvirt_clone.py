"""Snapshot clones without a VM: the save image format (header, XML, cookie, stream offset), the
clone's domain XML, and the FIFO restore feeding a reader."""

from __future__ import annotations

import json
import os
import struct
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.errors import PermanentProviderError
from vmscale.providers.base import InstanceSpec
from vmscale.providers.libvirt.accel import AccelChoice
from vmscale.providers.libvirt.provider import LibvirtProvider
from vmscale.providers.libvirt.restore import clone_domain_xml, restore_through_fifo
from vmscale.providers.libvirt.saveimage import (
    HEADER_SIZE,
    SaveImageError,
    header_with_xml,
    read_save_image,
)
from vmscale.providers.libvirt.xml import (
    QEMU_NS,
    VMSCALE_NS,
    DomainSpec,
    InstanceMeta,
    build_domain_xml,
    parse_metadata,
)

STREAM = b"QEVM\x00\x00\x00\x03" + bytes(range(256)) * 64  # stands in for QEMU's migration stream
COOKIE = b"<cookie>\n  <slirpHelper/>\n</cookie>\n"


def golden_xml() -> str:
    meta = InstanceMeta("web", "web-golden", 0, 40001, 1.0)
    spec = DomainSpec(
        meta=meta,
        domain_type="qemu",
        vcpus=1,
        memory_mb=256,
        disk_path="/g/disk.qcow2",
        console_log="/c/web-golden.log",
        kernel="/i/vmlinuz",
        initrd="/i/initrd",
        kernel_args={"identity": "push", "identity_token": "abc"},
        host_port=40001,
    )
    return build_domain_xml(spec)


def write_image(
    path: Path,
    xml: str,
    *,
    magic: bytes = b"LibvirtQemudSave",
    version: int = 2,
    fmt: int = 0,
    cookie: bytes = COOKIE,
    order: str = "<",
    stream: bytes = STREAM,
) -> Path:
    """A save image laid out the way libvirt writes one (XML, cookie, 64 KiB of padding, stream)."""
    xml_bytes = xml.encode() + b"\0"
    data = xml_bytes + (cookie + b"\0" if cookie else b"")
    data_len = len(data) + 64 * 1024
    fields = [version, data_len, 1, fmt, len(xml_bytes) if cookie else 0] + [0] * 14
    header = struct.pack(f"{order}16s19I", magic, *fields)
    path.write_bytes(header + data + b"\0" * (data_len - len(data)) + stream)
    return path


def test_reads_header_xml_cookie_and_where_the_stream_starts(tmp_path: Path) -> None:
    image = read_save_image(write_image(tmp_path / "g.sav", golden_xml()))
    assert image.xml == golden_xml() and image.cookie == COOKIE.rstrip(b"\0")
    with open(image.path, "rb") as f:
        f.seek(image.stream_offset)
        assert f.read() == STREAM


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_rewritten_header_keeps_the_stream_where_it_was(tmp_path: Path, order: str) -> None:
    image = read_save_image(write_image(tmp_path / "g.sav", golden_xml(), order=order))
    new_xml = golden_xml().replace("web-golden", "web-12345")
    copy = tmp_path / "c.sav"
    copy.write_bytes(header_with_xml(image, new_xml) + image.path.read_bytes()[image.stream_offset :])
    again = read_save_image(copy)
    assert (again.xml, again.cookie, again.data_len, again.order) == (
        new_xml,
        image.cookie,
        image.data_len,
        order,
    )
    assert copy.read_bytes()[again.stream_offset :] == STREAM


def test_an_image_without_a_cookie_stays_without_one(tmp_path: Path) -> None:
    image = read_save_image(write_image(tmp_path / "g.sav", golden_xml(), cookie=b""))
    rewritten = header_with_xml(image, "<domain/>")
    assert struct.unpack("<16s19I", rewritten[:HEADER_SIZE])[5] == 0  # cookieOffset


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"magic": b"LibvirtQemudPart"}, "incomplete save image", id="partial"),
        pytest.param({"magic": b"SomethingElse123"}, "not a libvirt QEMU save image", id="foreign"),
        pytest.param({"version": 1}, "version 1; vmscale rewrites version 2 only", id="old-version"),
        pytest.param({"fmt": 5}, "compressed", id="zstd"),
        pytest.param({"stream": b"junk"}, "no QEMU migration stream", id="no-stream"),
    ],
)
def test_what_cannot_be_rewritten_is_refused_clearly(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(SaveImageError, match=message):
        read_save_image(write_image(tmp_path / "g.sav", golden_xml(), **kwargs))


def test_a_version_from_the_future_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SaveImageError, match="version 3"):
        read_save_image(write_image(tmp_path / "g.sav", golden_xml(), version=3))


def test_an_xml_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    image = read_save_image(write_image(tmp_path / "g.sav", golden_xml()))
    with pytest.raises(SaveImageError, match="does not fit"):
        header_with_xml(image, "<domain>" + "x" * (image.data_len + 1) + "</domain>")


def test_the_clone_xml_has_its_own_identity_disk_console_and_port() -> None:
    meta = InstanceMeta("web", "web-7", 7, 40107, 2.0)
    out = clone_domain_xml(
        golden_xml(), meta=meta, disk_path="/o/web-7.qcow2", console_log="/c/web-7.log", guest_port=8000
    )
    root = ET.fromstring(out)
    golden = ET.fromstring(golden_xml())
    assert root.findtext("name") == "web-7"
    assert root.findtext("uuid") and root.findtext("uuid") != golden.findtext("uuid")
    assert parse_metadata(out) == meta
    assert root.find("devices/disk/source").get("file") == "/o/web-7.qcow2"  # type: ignore[union-attr]
    assert {s.get("path") for s in root.findall("devices/*/source[@path]")} == {"/c/web-7.log"}
    args = [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]
    assert "user,id=vmnet0,hostfwd=tcp:127.0.0.1:40107-:8000" in args
    cmdline = root.findtext("os/cmdline", "").split()
    assert "vmscale.name=web-7" in cmdline and not [w for w in cmdline if w.startswith("vmscale.identity")]
    assert root.find(f"metadata/{{{VMSCALE_NS}}}instance") is not None


def test_cloning_needs_one_loopback_port_forward() -> None:
    no_forward = golden_xml().replace("hostfwd=tcp:127.0.0.1:", "hostfwd=tcp:0.0.0.0:")
    with pytest.raises(PermanentProviderError, match="user-mode networking"):
        clone_domain_xml(
            no_forward,
            meta=InstanceMeta("web", "web-1", 1, 1, 0.0),
            disk_path="/d",
            console_log="/c",
            guest_port=8000,
        )


def test_the_fifo_restore_streams_the_new_header_then_the_golden_stream(tmp_path: Path) -> None:
    image = read_save_image(write_image(tmp_path / "g.sav", golden_xml()))
    received: list[bytes] = []

    def restore(path: str) -> None:  # what libvirtd does: open the path and read it all
        with open(path, "rb") as fifo:
            received.append(fifo.read())

    fifo = tmp_path / "web-3.fifo"
    restore_through_fifo(fifo, image, "<domain>web-3</domain>", restore, timeout_s=10)
    data = received[0]
    assert data[: HEADER_SIZE + image.data_len] == header_with_xml(image, "<domain>web-3</domain>")
    assert data[HEADER_SIZE + image.data_len :] == STREAM
    assert not fifo.exists()


def test_a_restore_that_fails_before_reading_leaves_no_writer_behind(tmp_path: Path) -> None:
    image = read_save_image(write_image(tmp_path / "g.sav", golden_xml()))
    before = threading.active_count()

    def refuses(path: str) -> None:
        raise PermanentProviderError("libvirt: restore failed before opening the file")

    with pytest.raises(PermanentProviderError):
        restore_through_fifo(tmp_path / "x.fifo", image, "<domain/>", refuses, timeout_s=10)
    assert threading.active_count() == before and not (tmp_path / "x.fifo").exists()
    assert not [p for p in tmp_path.iterdir() if p.is_fifo()] and os.path.exists(image.path)


def test_an_old_golden_stays_while_a_clone_uses_its_disk_then_goes(tmp_path: Path) -> None:
    import subprocess

    config = LibvirtProviderConfig(uri="test:///default", instance_dir=str(tmp_path / "inst"), launch="clone")
    provider = LibvirtProvider(config, tmp_path / "state", accel=AccelChoice("tcg", "unit test"))
    clones = provider._clones
    assert clones is not None
    old, new = (clones.root / "web" / key for key in ("old", "new"))
    for i, gdir in enumerate((old, new)):
        gdir.mkdir(parents=True)
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(gdir / "disk.qcow2"), "8M"], check=True
        )
        os.utime(gdir, (1000.0 + i, 1000.0 + i))  # "new" is the newer one
    overlay = provider.overlay_path("web-1")
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            str(old / "disk.qcow2"),
            "-F",
            "qcow2",
            str(overlay),
        ],
        check=True,
    )
    clones.collect()
    assert old.exists() and new.exists(), "web-1 still runs on the old golden's disk"
    provider.terminate("web-1", graceful_timeout_s=0)  # removes the overlay, then collects
    assert not old.exists() and new.exists()
    provider.drop_goldens("web")
    assert not (clones.root / "web").exists()


def image_dir(tmp_path: Path, image_hash: str = "aaa") -> Path:
    """A lean image's folder as far as the provider reads it (empty files, a manifest)."""
    image = tmp_path / "image"
    image.mkdir(exist_ok=True)
    for name in ("base.qcow2", "vmlinuz", "initrd.img"):
        (image / name).write_bytes(b"")
    (image / "manifest.json").write_text(json.dumps({"hash": image_hash, "inputs": {}}))
    return image


def libvirt_provider(tmp_path: Path, launch: str = "clone") -> LibvirtProvider:
    """A provider on libvirt's test driver over ``image_dir``: enough to make keys and find goldens."""
    config = LibvirtProviderConfig(
        uri="test:///default",
        image_dir=str(tmp_path / "image"),
        instance_dir=str(tmp_path / "inst"),
        launch=launch,  # type: ignore[arg-type]
    )
    return LibvirtProvider(config, tmp_path / "state", accel=AccelChoice("tcg", "unit test"))


def test_the_golden_key_changes_with_what_the_guests_memory_depends_on(tmp_path: Path) -> None:
    image = image_dir(tmp_path)
    provider = libvirt_provider(tmp_path)
    assert provider._clones is not None
    base = InstanceSpec(group="web", name="web-1", index=1, vcpus=1, memory_mb=512)
    key = provider._clones.key(base)
    assert (
        provider._clones.key(InstanceSpec(group="web", name="web-9", index=9, vcpus=1, memory_mb=512)) == key
    )
    for other in (
        InstanceSpec(group="web", name="web-1", index=1, vcpus=2, memory_mb=512),
        InstanceSpec(group="web", name="web-1", index=1, vcpus=1, memory_mb=1024),
        InstanceSpec(
            group="web", name="web-1", index=1, vcpus=1, memory_mb=512, workload_args={"fib_max_n": "30"}
        ),
    ):
        assert provider._clones.key(other) != key
    (image / "manifest.json").write_text(json.dumps({"hash": "bbb", "inputs": {}}))
    assert provider._clones.key(base) != key, "a new image needs a new golden"


def test_prepare_says_which_golden_is_ready_how_large_and_never_its_token(tmp_path: Path) -> None:
    image_dir(tmp_path)
    spec = InstanceSpec(group="web", name="web-golden", index=0, vcpus=1, memory_mb=512)
    booting = libvirt_provider(tmp_path, "boot")
    assert not booting.restores_clones() and booting.prepare(spec) is None
    cloning = libvirt_provider(tmp_path)
    assert cloning.restores_clones() and cloning._clones is not None
    gdir = cloning._clones.root / "web" / cloning._clones.key(spec)  # made by an earlier run
    gdir.mkdir(parents=True)
    (gdir / "disk.qcow2").write_bytes(b"")
    (gdir / "memory.sav").write_bytes(b"\0" * (3 * 2**20 + 2**19))
    record = {"key": gdir.name, "dir": str(gdir), "token": "s3cret-token-0123", "created_at": 1000.0}
    (gdir / "golden.json").write_text(json.dumps({**record, "boot_s": 8.5, "save_s": 2.1}))
    golden = cloning.prepare(spec)
    assert golden is not None
    assert (golden.key, golden.size_mb, golden.boot_s, golden.made_now) == (gdir.name, 3.5, 8.5, False)
    assert "s3cret" not in json.dumps(golden.to_dict()), "the identity token stays in the provider"
