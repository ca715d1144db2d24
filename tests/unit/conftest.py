"""Fixtures shared by unit-test modules."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A stand-in for a built guest image: a real (empty) qcow2 base disk and a manifest."""
    d = tmp_path / "image"
    d.mkdir()
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(d / "base.qcow2"), "64M"], check=True, timeout=30
    )
    (d / "vmlinuz").write_bytes(b"")
    (d / "initrd.img").write_bytes(b"")
    (d / "manifest.json").write_text(json.dumps({"hash": "test", "inputs": {}}))
    return d
