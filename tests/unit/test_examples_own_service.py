"""examples/own-service: the configs a user starts from to scale a service of their own are valid
(run from the repository's folder, as their headers say) and say what they claim."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vmscale.config import parse_config
from vmscale.config.cloudinit import QCOW2_MAGIC, user_data_file_problem

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "examples" / "own-service"


def test_process_example_runs_a_command_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    cfg = parse_config(tomllib.loads((FOLDER / "process.toml").read_text()), "process.toml")
    assert cfg.provider.kind == "process" and cfg.provider.process.command[:3] == [
        "python3",
        "-m",
        "http.server",
    ]
    assert "{port}" in cfg.provider.process.command and cfg.lb.kind == "haproxy"
    site = Path(cfg.provider.process.command[-1])
    assert (site / cfg.health.path.lstrip("/")).is_file(), "the health file the example serves"
    assert not cfg.notes


def test_vm_example_boots_a_cloud_image_with_its_user_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)
    data = tomllib.loads((FOLDER / "vm.toml").read_text())
    assert data["provider"]["libvirt"]["cloud_image"] == "/var/lib/vmscale/cloud-image/cloud.qcow2"
    image = tmp_path / "cloud.qcow2"  # the built image may not exist where unit tests run
    image.write_bytes(QCOW2_MAGIC + b"\x00" * 508)
    data["provider"]["libvirt"]["cloud_image"] = str(image)
    cfg = parse_config(data, "vm.toml")
    assert cfg.provider.libvirt.boot == "disk" and cfg.health.boot_timeout_s >= 120
    assert user_data_file_problem(cfg.provider.libvirt.user_data) == ""
    assert "8000" in (FOLDER / "user-data.yaml").read_text() and cfg.provider.libvirt.guest_port == 8000
