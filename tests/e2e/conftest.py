"""e2e fixtures for real libvirt guests: daemons up, guest image built (or reused), a provider.

These FAIL (never skip) when something cannot be set up: a missing daemon or image build failure
is a broken CI machine, and a skipped e2e suite looks exactly like a passing one.
Only the tests that ask for these fixtures pay for them (the browser tests do not).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = Path(os.environ.get("VMSCALE_IMAGE_DIR", "/var/lib/vmscale/image"))
CLOUD_IMAGE_DIR = Path(os.environ.get("VMSCALE_CLOUD_IMAGE_DIR", "/var/lib/vmscale/cloud-image"))
URI = "qemu:///system"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def libvirt_daemons() -> str:
    """virtlogd + libvirtd running (started by scripts/daemons.sh when absent). Returns the URI."""
    if importlib.util.find_spec("libvirt") is None:
        pytest.fail("libvirt-python is not installed: .venv/bin/pip install -e '.[libvirt]'")
    try:
        subprocess.run(
            ["bash", str(REPO / "scripts/daemons.sh")],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"scripts/daemons.sh failed: {exc.stderr or exc.stdout}")
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/daemons.sh did not finish within 120 s")
    return URI


@pytest.fixture(scope="session")
def guest_image(libvirt_daemons: str) -> Path:
    """The guest image, built once (a few minutes the first time, reused when inputs are unchanged)."""
    from vmscale.errors import VmscaleError
    from vmscale.providers.libvirt.image import build_image

    try:
        build_image(IMAGE_DIR)
    except VmscaleError as exc:
        pytest.fail(f"guest image build failed: {exc}")
    return IMAGE_DIR


@pytest.fixture(scope="session")
def cloud_image(libvirt_daemons: str) -> Path:
    """The cloud-init disk image (``boot = "disk"``), built once (~4-5 min the first time on 2 cores,
    reused when inputs are unchanged). Returns the ``cloud.qcow2`` a config's ``cloud_image`` names."""
    from vmscale.errors import VmscaleError
    from vmscale.providers.libvirt.cloudimage import CURRENT_LINK, build_cloud_image

    try:
        build_cloud_image(CLOUD_IMAGE_DIR)
    except VmscaleError as exc:
        pytest.fail(f"cloud image build failed: {exc}")
    return CLOUD_IMAGE_DIR / CURRENT_LINK


@pytest.fixture
def libvirt_state_dir() -> Iterator[Path]:
    """A state folder the libvirt-qemu user can reach (pytest's tmp_path is 0700)."""
    path = Path("/var/lib/vmscale/e2e") / uuid.uuid4().hex[:10]
    path.mkdir(parents=True, mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def libvirt_group() -> str:
    return "e2e" + uuid.uuid4().hex[:6]
