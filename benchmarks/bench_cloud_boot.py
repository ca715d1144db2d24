"""Boot of the cloud image under the libvirt provider: from ``launch`` to the user-data's service
answering through the VM's loopback forward, median over runs (one VM at a time).

The user-data is the README's example (examples/own-service/user-data.yaml, also the e2e test's):
write a systemd unit for ``python3 -m http.server`` and a health file, ``systemctl start
--no-block`` it; ``--pattern bootcmd`` starts the same server from cloud-init's first network stage
instead. Each guest also reports, once its boot has finished, ``systemd-analyze`` (kernel /
userspace, the slowest units, the critical chain) and ``cloud-init analyze blame`` into its web
folder, so the run says where the time went. TCG timings depend on what else runs on the host:
every run records the load average and how many other QEMU processes were running.

Run:  .venv/bin/python benchmarks/bench_cloud_boot.py [--runs 3] [--pattern runcmd|bootcmd]
(root; starts nothing but its own VMs; builds/reuses the cloud image).
Writes benchmarks/results/cloud_boot-PATTERN.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cloud_boot-{pattern}.json"

from vmscale.config.libvirt import LibvirtProviderConfig  # noqa: E402
from vmscale.providers.base import InstanceSpec  # noqa: E402
from vmscale.providers.libvirt.cloudimage import (  # noqa: E402
    CURRENT_LINK,
    DEFAULT_CLOUD_IMAGE_DIR,
    build_cloud_image,
)
from vmscale.providers.libvirt.provider import LibvirtProvider  # noqa: E402

EXAMPLE = ROOT / "examples" / "own-service" / "user-data.yaml"
REPORT_BOOT = """#!/bin/sh
# once the boot has finished: where the time went, into the web folder
until systemd-analyze > /tmp/analyze.txt 2>/dev/null; do sleep 3; done
cloud-init analyze blame > /tmp/blame.txt 2>&1
systemd-analyze blame --no-pager | head -8 > /tmp/units.txt
systemd-analyze critical-chain --no-pager web.service > /tmp/chain.txt 2>&1
mv /tmp/analyze.txt /tmp/blame.txt /tmp/units.txt /tmp/chain.txt /srv/www/
"""


def user_data(pattern: str) -> str:
    """runcmd: the README's example as it is (a unit from write_files, started by runcmd in
    cloud-init's last stage). bootcmd: the service started as a transient unit from cloud-init's
    first network stage. Both also run REPORT_BOOT."""
    data = yaml.safe_load(EXAMPLE.read_text())
    if pattern == "bootcmd":
        data = {
            "bootcmd": [
                ["sh", "-c", "mkdir -p /srv/www && echo ok > /srv/www/healthz && hostname > /srv/www/whoami"],
                ["systemd-run", "--unit=web", "--no-block", "/usr/bin/python3", "-m", "http.server", "8000",
                 "--directory", "/srv/www"],
            ],
            "write_files": [],
            "runcmd": [],
        }  # fmt: skip
    data["write_files"].append(
        {"path": "/usr/local/bin/report-boot", "permissions": "0755", "content": REPORT_BOOT}
    )
    data["runcmd"].append(["systemd-run", "--no-block", "/usr/local/bin/report-boot"])
    return "#cloud-config\n" + yaml.safe_dump(data, sort_keys=False)


def other_qemus(own: str) -> int:
    count = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if cmd and "qemu-system" in os.path.basename(cmd[0]) and not any(own in a for a in cmd):
            count += 1
    return count


def wait_for(url: str, deadline_s: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return None


def guest_breakdown(endpoint: str) -> dict[str, Any]:
    if wait_for(f"{endpoint}/analyze.txt", 300) is None:
        return {}
    text = httpx.get(f"{endpoint}/analyze.txt", timeout=5).text.strip() or "(empty)"
    out: dict[str, Any] = {"systemd_analyze": text.splitlines()[0]}
    for part in ("kernel", "userspace"):
        found = re.search(r"([\d.]+min )?([\d.]+)s \(" + part + r"\)", text)
        if found:
            minutes = float(found.group(1).split("min")[0]) if found.group(1) else 0.0
            out[f"{part}_s"] = round(minutes * 60 + float(found.group(2)), 1)
    blame = httpx.get(f"{endpoint}/blame.txt", timeout=5).text.strip().splitlines()
    out["cloud_init_top"] = [line.strip() for line in blame[1:6]]
    out["slowest_units"] = [
        line.strip() for line in httpx.get(f"{endpoint}/units.txt", timeout=5).text.splitlines()
    ]
    chain = httpx.get(f"{endpoint}/chain.txt", timeout=5).text.splitlines()
    out["critical_chain"] = [line.strip("└─│ ") for line in chain if "@" in line]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image-dir", type=Path, default=DEFAULT_CLOUD_IMAGE_DIR)
    parser.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    parser.add_argument(
        "--pattern", choices=["bootcmd", "runcmd"], default="runcmd", help="how user-data starts it"
    )
    args = parser.parse_args()
    manifest, _ = build_cloud_image(args.image_dir)
    group = f"cb{uuid.uuid4().hex[:6]}"
    state = Path(tempfile.mkdtemp(prefix=f"{group}-", dir="/var/lib/vmscale"))
    state.chmod(0o755)
    (state / "user-data").write_text(user_data(args.pattern))
    config = LibvirtProviderConfig(
        boot="disk", accel=args.accel, cloud_image=str(args.image_dir / CURRENT_LINK),
        user_data=str(state / "user-data"), base_port=31500 + uuid.uuid4().int % 400 * 10,
    )  # fmt: skip
    provider = LibvirtProvider(config, state)
    runs: list[dict[str, Any]] = []
    try:
        for i in range(1, args.runs + 1):
            spec = InstanceSpec(group=group, name=f"{group}-{i}", index=i, memory_mb=512)
            before = {"load_1m": os.getloadavg()[0], "other_qemus": other_qemus(group)}
            t0 = time.monotonic()
            inst = provider.launch(spec)
            answered = wait_for(f"{inst.endpoint}/healthz", 900)
            run: dict[str, Any] = {"name": spec.name, **before}
            run["launch_to_service_s"] = round(answered - t0, 1) if answered else None
            run["load_1m_after"] = os.getloadavg()[0]
            if answered:
                run.update(guest_breakdown(inst.endpoint))
            runs.append(run)
            print(json.dumps(run), flush=True)
            provider.terminate(spec.name, graceful_timeout_s=0)
    finally:
        for i in range(1, args.runs + 1):
            provider.terminate(f"{group}-{i}", graceful_timeout_s=0)
        provider.close()
        shutil.rmtree(state, ignore_errors=True)
    times = [r["launch_to_service_s"] for r in runs if r["launch_to_service_s"] is not None]
    report = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "accel": provider.accel.accel,
        "pattern": args.pattern,
        "image": {
            "hash": manifest.hash,
            "size_mib": round(manifest.size_bytes / 2**20),
            "kernel": manifest.kernel_version,
        },
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "median_launch_to_service_s": statistics.median(times) if times else None,
        "runs": runs,
    }
    results = Path(str(RESULTS).format(pattern=args.pattern))
    results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"median launch -> service answering: {report['median_launch_to_service_s']} s ({len(times)} runs)")
    print(f"written to {results}")


if __name__ == "__main__":
    main()
