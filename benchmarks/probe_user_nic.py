"""How can a libvirt domain get a user-mode NIC with a loopback port forward on THIS host's libvirt?

Measures, with real domains booted from the lean image, each way vmscale could declare it:

1. ``<interface type='user'>`` + ``<backend type='passt'/>`` + ``<portForward>`` (libvirt's own way,
   libvirt >= 9.0 with the passt package): does ``define`` accept it; if so, does the forward work
   and survive ``virsh save``/``restore`` and ``managedsave``?
2. ``<interface type='user'>`` (QEMU's built-in SLIRP) + ``<portForward>``: is the forward applied?
3. Today's passthrough (``<qemu:commandline>`` ``-netdev user,hostfwd=...``): the forward, the
   "custom-argv" taint, what ``virsh domifaddr`` sees, and whether it survives save/restore and
   managedsave (the warm pool uses both).

Live migration is not measured here (one libvirtd on this host; migrating to itself is refused).

Run:  .venv/bin/python benchmarks/probe_user_nic.py [--image-dir DIR]   (root; builds/reuses the lean
image). Prints a summary and writes benchmarks/results/user_nic.json. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "user_nic.json"
URI = "qemu:///system"

from vmscale.providers.libvirt import xml  # noqa: E402
from vmscale.providers.libvirt.image import DEFAULT_IMAGE_DIR, build_image, load_manifest  # noqa: E402


def virsh(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers_within(port: int, deadline_s: float) -> float | None:
    """Seconds until GET /healthz on 127.0.0.1:port answers 200, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return round(time.monotonic() - t0, 2)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return None


def domain_xml(name: str, work: Path, image_dir: Path, port: int, nic: str) -> str:
    """The lean domain vmscale makes, with its NIC replaced by ``nic`` ('' keeps the passthrough)."""
    manifest = load_manifest(image_dir)
    disk = work / f"{name}.qcow2"
    backing = str(manifest.path(image_dir, "disk"))
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", str(disk)]
    subprocess.run(argv, check=True, timeout=60)
    spec = xml.DomainSpec(
        meta=xml.InstanceMeta("nicprobe", name, 1, port), domain_type="qemu", vcpus=1, memory_mb=512,
        disk_path=str(disk), console_log=str(work / f"{name}.log"),
        kernel=str(manifest.path(image_dir, "kernel")), initrd=str(manifest.path(image_dir, "initrd")),
        network="user", host_port=port,
    )  # fmt: skip
    text = xml.build_domain_xml(spec)
    if nic:
        text = re.sub(r"\s*<qemu:commandline>.*</qemu:commandline>", "", text, flags=re.S)
        text = text.replace("</devices>", nic + "\n  </devices>")
    return text


def user_nic(port: int, passt: bool) -> str:
    backend = "<backend type='passt'/>" if passt else ""
    return (
        f"<interface type='user'>{backend}<model type='virtio'/>"
        f"<portForward proto='tcp' address='127.0.0.1'><range start='{port}' to='8000'/></portForward>"
        "</interface>"
    )


def try_variant(label: str, name: str, work: Path, image_dir: Path, nic_of: Any) -> dict[str, Any]:
    port = free_port()
    out: dict[str, Any] = {"variant": label}
    (work / f"{name}.xml").write_text(domain_xml(name, work, image_dir, port, nic_of(port)))
    defined = virsh("define", str(work / f"{name}.xml"))
    out["define"] = "ok" if defined.returncode == 0 else defined.stderr.strip()
    if defined.returncode != 0:
        return out
    started = virsh("start", name)
    out["start"] = "ok" if started.returncode == 0 else started.stderr.strip()
    if started.returncode != 0:
        return out
    out["forward_answers_after_s"] = answers_within(port, 90)
    log = Path(f"/var/log/libvirt/qemu/{name}.log")
    out["tainted_custom_argv"] = "tainted: custom-argv" in (
        log.read_text(errors="replace") if log.exists() else ""
    )
    out["domifaddr"] = virsh("domifaddr", name).stdout.strip().splitlines()[2:] or "(no addresses)"
    out["domiflist"] = virsh("domiflist", name).stdout.strip().splitlines()[2:] or "(no interfaces)"
    if out["forward_answers_after_s"] is None:
        return out
    saved = work / f"{name}.save"
    ok = virsh("save", name, str(saved)).returncode == 0 and virsh("restore", str(saved)).returncode == 0
    out["after_save_restore_answers_s"] = answers_within(port, 60) if ok else "save/restore failed"
    ok = virsh("managedsave", name).returncode == 0 and virsh("start", name).returncode == 0
    out["after_managedsave_start_answers_s"] = answers_within(port, 60) if ok else "managedsave failed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGE_DIR)
    args = parser.parse_args()
    build_image(args.image_dir)
    work = Path("/var/lib/vmscale") / f"nicprobe-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True, mode=0o755)
    prefix = work.name
    variants = [
        ("passt backend + portForward", lambda p: user_nic(p, passt=True)),
        ("type='user' (SLIRP) + portForward", lambda p: user_nic(p, passt=False)),
        ("qemu:commandline passthrough (today)", lambda p: ""),
    ]
    results = []
    try:
        for i, (label, nic_of) in enumerate(variants, 1):
            name = f"{prefix}-{i}"
            try:
                results.append(try_variant(label, name, work, args.image_dir, nic_of))
            finally:
                virsh("destroy", name)
                virsh("undefine", name, "--managed-save")
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False, timeout=60)
    version = virsh("version").stdout
    report = {
        "host": platform.node(),
        "libvirt": " | ".join(line.strip() for line in version.splitlines() if line.strip()),
        "passt_installed": subprocess.run(["sh", "-c", "command -v passt"], capture_output=True).returncode
        == 0,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "variants": results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        print(json.dumps(r))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
