"""`vmscale image info` on a built (here: hand-made) image folder, and its error on an empty one."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vmscale.cli import app


def fake_image(tmp_path: Path) -> Path:
    for name in ("base.qcow2", "vmlinuz", "initrd.img"):
        (tmp_path / name).write_bytes(b"x")
    manifest = {"hash": "0123456789abcdef", "inputs": {"workload": "feedface"}, "kernel_version": "6.1"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_image_info_shows_hash_and_inputs(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["image", "info", "--out", str(fake_image(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "0123456789abcdef" in result.output and "feedface" in result.output


def test_image_info_json_is_the_manifest(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["image", "info", "--json", "--out", str(fake_image(tmp_path))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kernel_version"] == "6.1"


def test_image_info_without_an_image_fails_and_says_how_to_build(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["image", "info", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "vmscale image build" in result.output
