"""cloud-init NoCloud seed ISOs, for VMs booted from a user-supplied cloud image (``boot = "disk"``).

NoCloud reads ``user-data`` and ``meta-data`` (and optionally ``network-config``) from a filesystem
labelled ``cidata``. One ISO per instance, so each gets its own instance-id and hostname; the
user-data is the user's file, unchanged (it is what installs and starts the backend on that image).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from vmscale.config.cloudinit import user_data_problem
from vmscale.errors import PermanentProviderError, TemporaryProviderError


def meta_data(instance_id: str, hostname: str) -> str:
    # JSON is valid YAML, and needs no YAML library.
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname}, indent=2) + "\n"


def make_seed_iso(
    dest: Path,
    *,
    user_data: str,
    instance_id: str,
    hostname: str,
    network_config: str | None = None,
    timeout_s: float = 30.0,
) -> Path:
    """Write a ``cidata`` ISO 9660 image (Joliet + Rock Ridge) at ``dest`` with xorriso."""
    problem = user_data_problem(user_data)
    if problem:
        raise PermanentProviderError(f"cannot make the seed ISO for {instance_id}: {problem}")
    xorriso = shutil.which("xorriso")
    if xorriso is None:
        raise PermanentProviderError(
            "xorriso is not installed (apt-get install xorriso): needed for seed ISOs"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vmscale-seed-") as tmp:
        src = Path(tmp)
        (src / "user-data").write_text(user_data)
        (src / "meta-data").write_text(meta_data(instance_id, hostname))
        if network_config is not None:
            (src / "network-config").write_text(network_config)
        partial = dest.with_suffix(".partial")
        argv = [xorriso, "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o", str(partial), str(src)]
        try:
            subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise TemporaryProviderError(f"xorriso did not finish within {timeout_s:.0f} s") from exc
        except subprocess.CalledProcessError as exc:
            raise PermanentProviderError(f"xorriso failed making {dest}: {exc.stderr.strip()}") from exc
    partial.chmod(0o644)
    partial.replace(dest)
    return dest


def read_seed_iso(iso: Path, timeout_s: float = 30.0) -> dict[str, str]:
    """The files of a seed ISO and their text (used by tests and ``vmscale image info``)."""
    with tempfile.TemporaryDirectory(prefix="vmscale-seed-read-") as tmp:
        argv = ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", tmp]
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout_s)
        return {p.name: p.read_text() for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def volume_id(iso: Path, timeout_s: float = 30.0) -> str:
    """The ISO's volume label (NoCloud requires ``cidata``)."""
    out = subprocess.run(
        ["xorriso", "-indev", str(iso), "-pvd_info"],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("Volume Id"):
            return line.split(":", 1)[1].strip()
    return ""
