"""NoCloud seed ISOs: label cidata, user-data unchanged, per-instance meta-data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt.seed import make_seed_iso, read_seed_iso, volume_id

USER_DATA = """#cloud-config
packages: [python3-fastapi, python3-uvicorn]
runcmd:
  - [systemctl, start, vmscale-backend]
"""


def test_seed_iso_has_cidata_label_user_data_and_instance_meta_data(tmp_path: Path) -> None:
    iso = make_seed_iso(tmp_path / "web-3.iso", user_data=USER_DATA, instance_id="web-3", hostname="web-3")
    assert volume_id(iso) == "cidata"
    files = read_seed_iso(iso)
    assert sorted(files) == ["meta-data", "user-data"]
    assert files["user-data"] == USER_DATA
    assert json.loads(files["meta-data"]) == {"instance-id": "web-3", "local-hostname": "web-3"}


def test_network_config_is_included_when_given(tmp_path: Path) -> None:
    net = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
    iso = make_seed_iso(
        tmp_path / "s.iso", user_data=USER_DATA, instance_id="i", hostname="h", network_config=net
    )
    assert read_seed_iso(iso)["network-config"] == net


def test_two_instances_get_distinct_instance_ids(tmp_path: Path) -> None:
    a = make_seed_iso(tmp_path / "a.iso", user_data=USER_DATA, instance_id="web-1", hostname="web-1")
    b = make_seed_iso(tmp_path / "b.iso", user_data=USER_DATA, instance_id="web-2", hostname="web-2")
    assert read_seed_iso(a)["meta-data"] != read_seed_iso(b)["meta-data"]


def test_user_data_that_cloud_init_would_ignore_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermanentProviderError, match="#cloud-config"):
        make_seed_iso(tmp_path / "x.iso", user_data="packages: [x]\n", instance_id="i", hostname="h")
    assert not (tmp_path / "x.iso").exists()
