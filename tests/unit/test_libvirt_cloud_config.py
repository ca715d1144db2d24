"""What `config check` says about a ``boot = "disk"`` group: a missing or non-qcow2 cloud image and
user-data cloud-init would ignore or cannot parse are errors at load time, each at its own path
with the fix; the seed ISO maker refuses the same user-data."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.config import parse_config
from vmscale.config.cloudinit import QCOW2_MAGIC, user_data_problem
from vmscale.errors import ConfigError, PermanentProviderError
from vmscale.providers.libvirt.seed import make_seed_iso

GOOD = "#cloud-config\nwrite_files:\n  - path: /srv/www/healthz\n    content: ok\nruncmd:\n  - [echo, hi]\n"


def qcow2(path: Path) -> Path:
    path.write_bytes(QCOW2_MAGIC + b"\x00\x00\x00\x03" + b"\x00" * 504)
    return path


def libvirt_problems(tmp_path: Path, **libvirt: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"provider": {"kind": "libvirt", "libvirt": libvirt}})
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, ""),
        ("#cloud-config\n", ""),
        ("#!/bin/sh\necho hello\n", ""),
        ("Content-Type: multipart/mixed; boundary=x\n", ""),
        ("packages: [nginx]\n", "must start with '#cloud-config' (YAML), '#!' (a script)"),
        ("", "it starts with '(empty)'"),
        ("#cloud-config\nruncmd:\n  - [echo, hi]\n bad: indent\n", "not valid YAML at line 4"),
        ("#cloud-config\n- just\n- a list\n", "must be a YAML mapping (key: value), not a list"),
    ],
    ids=["cloud-config", "empty-config", "script", "mime", "no-header", "empty", "bad-yaml", "list"],
)
def test_user_data(text: str, expected: str) -> None:
    problem = user_data_problem(text)
    assert (expected in problem) if expected else problem == ""


def test_a_good_disk_group_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "user-data").write_text(GOOD)
    cfg = parse_config(
        {
            "provider": {
                "kind": "libvirt",
                "libvirt": {
                    "boot": "disk",
                    "cloud_image": str(qcow2(tmp_path / "img.qcow2")),
                    "user_data": str(tmp_path / "user-data"),
                },
            }
        }
    )
    assert cfg.provider.libvirt.boot == "disk"


def test_disk_boot_without_a_cloud_image_says_how_to_get_one(tmp_path: Path) -> None:
    [problem] = libvirt_problems(tmp_path, boot="disk")
    assert problem.startswith("provider.libvirt.cloud_image: boot = 'disk' needs a qcow2 cloud image")
    assert "vmscale image build --kind cloud" in problem


def test_missing_image_and_an_image_that_is_not_qcow2(tmp_path: Path) -> None:
    [missing] = libvirt_problems(tmp_path, boot="disk", cloud_image=str(tmp_path / "nope.qcow2"))
    assert f"{tmp_path / 'nope.qcow2'} does not exist" in missing
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\x00" * 512)
    [not_qcow2] = libvirt_problems(tmp_path, boot="disk", cloud_image=str(raw))
    assert "is not a qcow2 image (convert it: qemu-img convert -O qcow2" in not_qcow2


def test_bad_user_data_files_are_reported_at_their_path(tmp_path: Path) -> None:
    image = str(qcow2(tmp_path / "img.qcow2"))
    (tmp_path / "plain.yaml").write_text("runcmd: [ls]\n")
    [no_header] = libvirt_problems(
        tmp_path, boot="disk", cloud_image=image, user_data=str(tmp_path / "plain.yaml")
    )
    assert no_header.startswith(
        f"provider.libvirt.user_data: {tmp_path / 'plain.yaml'}: user-data must start"
    )
    [missing] = libvirt_problems(tmp_path, boot="disk", cloud_image=image, user_data=str(tmp_path / "x"))
    assert f"{tmp_path / 'x'} does not exist" in missing


def test_config_check_lists_both_problems_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "ud").write_text("#cloud-config\nruncmd: [\n")
    cfg = tmp_path / "v.toml"
    cfg.write_text(
        f'[provider]\nkind = "libvirt"\n[provider.libvirt]\nboot = "disk"\nuser_data = "{tmp_path / "ud"}"\n'
    )
    result = CliRunner().invoke(cli_app, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    assert "2 problem(s)" in result.stderr
    assert "provider.libvirt.cloud_image: boot = 'disk' needs" in result.stderr
    assert "provider.libvirt.user_data:" in result.stderr and "not valid YAML" in result.stderr


def test_seed_iso_refuses_user_data_edited_into_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(PermanentProviderError, match="not valid YAML"):
        make_seed_iso(tmp_path / "s.iso", user_data="#cloud-config\na: [\n", instance_id="i", hostname="h")
    assert not (tmp_path / "s.iso").exists()
