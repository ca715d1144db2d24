"""The [cluster] section: hosts, placement and how hosts are watched; today's configs keep working."""

from __future__ import annotations

from typing import Any

import pytest

from vmscale.config import parse_config
from vmscale.config.hosts import IMPLICIT_HOST
from vmscale.errors import ConfigError


def host(name: str, uri: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "uri": uri, **extra}


def test_no_hosts_is_one_implicit_host_at_the_provider_uri() -> None:
    cfg = parse_config({"provider": {"kind": "libvirt", "libvirt": {"uri": "qemu:///session"}}})
    (only,) = cfg.cluster.effective_hosts(cfg.provider.libvirt.uri)
    assert (only.name, only.uri) == (IMPLICIT_HOST, "qemu:///session")


def test_hosts_with_labels_limits_and_migration_uri() -> None:
    cfg = parse_config(
        {
            "cluster": {
                "placement": {"strategy": "binpack"},
                "hosts": [
                    host("h1", "qemu+tls://h1/system", labels={"zone": "a"}, max_instances=8),
                    host("h2", "qemu+tls://h2/system", migration_uri="qemu+tcp://10.0.0.2/system"),
                ],
            }
        }
    )
    h1, h2 = cfg.cluster.effective_hosts("qemu:///system")
    assert h1.labels == {"zone": "a"} and h1.max_instances == 8 and h1.peer_uri == "qemu+tls://h1/system"
    assert h2.peer_uri == "qemu+tcp://10.0.0.2/system"
    assert cfg.cluster.placement.strategy == "binpack"


@pytest.mark.parametrize(
    ("cluster", "problem"),
    [
        pytest.param(
            {"hosts": [host("h1", "qemu+tls://a/system"), host("h1", "qemu+tls://b/system")]},
            "cluster.hosts: each host needs its own name; repeated: h1",
            id="same-name",
        ),
        pytest.param(
            {"hosts": [host("h1", "qemu+tls://a/system"), host("h2", "qemu+tls://a/system")]},
            "each host needs its own uri; repeated: qemu+tls://a/system",
            id="same-uri",
        ),
        pytest.param({"hosts": [host("H 1", "qemu:///system")]}, "cluster.hosts[0].name", id="bad-name"),
        pytest.param({"hosts": [host("h1", "h1.example")]}, "is not a libvirt URI", id="not-a-uri"),
        pytest.param(
            {"hosts": [host("h1", "qemu:///system", labels={"Zone": "a"})]}, "label names", id="bad-label"
        ),
        pytest.param({"placement": {"strategy": "random"}}, "cluster.placement.strategy", id="bad-strategy"),
    ],
)
def test_bad_cluster_settings_are_reported_with_their_path(cluster: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"cluster": cluster})
    assert any(problem in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("libvirt", "problem"),
    [
        pytest.param(
            {"network": "bridge", "addresses": {"pool": "300.1.1.0/24"}}, "IPv4 CIDR", id="bad-cidr"
        ),
        pytest.param(
            {"network": "bridge", "addresses": {"pool": "198.51.100.0/24", "network": "198.18.0.0/16"}},
            "must lie inside network",
            id="pool-outside-network",
        ),
        pytest.param(
            {"network": "bridge", "addresses": {"pool": "198.51.100.0/24", "gateway": "10.0.0.1"}},
            "is not inside network",
            id="gateway-elsewhere",
        ),
        pytest.param({"addresses": {"pool": "198.51.100.0/24"}}, "needs network = 'bridge'", id="user-mode"),
        pytest.param({"addresses": {"gateway": "198.51.100.1"}}, "need a pool", id="gateway-without-pool"),
    ],
)
def test_bad_address_pools_are_refused_with_the_fix(libvirt: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"provider": {"kind": "libvirt", "libvirt": libvirt}})
    assert any(problem in p for p in info.value.problems), info.value.problems
