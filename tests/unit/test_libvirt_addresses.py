"""vmscale-assigned guest addresses: instance N gets pool[N], with the network's prefix, and a MAC
that encodes the address."""

from __future__ import annotations

import pytest

from vmscale.errors import PermanentProviderError
from vmscale.providers.libvirt.addresses import StaticAddressing, mac_for


@pytest.mark.parametrize(
    ("pool", "network", "index", "cidr"),
    [
        pytest.param("198.51.100.0/24", "", 1, "198.51.100.1/24", id="pool-is-the-network"),
        pytest.param("198.18.1.0/24", "198.18.0.0/16", 7, "198.18.1.7/16", id="pool-inside-a-wider-subnet"),
        pytest.param("198.18.1.0/24", "198.18.0.0/16", 254, "198.18.1.254/16", id="last-usable"),
    ],
)
def test_instance_n_gets_the_nth_address_with_the_network_prefix(
    pool: str, network: str, index: int, cidr: str
) -> None:
    assert StaticAddressing.parse(pool, network).cidr(index) == cidr


@pytest.mark.parametrize("index", [0, 255, 1000], ids=["zero", "broadcast", "past-the-pool"])
def test_an_index_outside_the_pool_is_refused_with_the_fix(index: int) -> None:
    with pytest.raises(PermanentProviderError, match="larger pool"):
        StaticAddressing.parse("198.51.100.0/24").address(index)


def test_the_gateway_is_never_handed_out() -> None:
    addressing = StaticAddressing.parse("198.51.100.0/24", gateway="198.51.100.1")
    with pytest.raises(PermanentProviderError, match="gateway"):
        addressing.address(1)
    assert str(addressing.address(2)) == "198.51.100.2"


def test_mac_is_locally_administered_unicast_and_one_per_address() -> None:
    mac = mac_for("198.18.1.7")
    assert mac == "52:54:c6:12:01:07"
    first = int(mac.split(":")[0], 16)
    assert first & 0b10 and not first & 0b01  # locally administered, unicast
    assert len({mac_for(f"198.18.1.{i}") for i in range(1, 255)}) == 254
