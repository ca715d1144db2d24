"""Guest addresses vmscale assigns on a bridged network: instance N gets the Nth address of a pool.

Why vmscale assigns them instead of discovering what DHCP gave (``domifaddr``):

* **Live migration.** A guest on a network stretched over every host (one VLAN / bridge) keeps its
  address and its open TCP connections when it moves; only the switch relearns where its MAC is
  (QEMU announces it after the switch-over). An address known up front is known on the destination
  too, with no lease there to read.
* **Nothing to ask.** libvirt sees DHCP leases only of networks it runs itself; on a bridge to the
  site's network the lease lives on some other DHCP server, ``domifaddr --source arp`` knows a guest
  only after the host has talked to it, and the guest agent is not in vmscale's lean image.
* **Restart-proof.** The address is written in the domain's vmscale metadata, so ``list`` reads it
  back from libvirt after a controller restart or a migration.

A group needs a pool of its own (two groups over one pool would hand out the same addresses).
The MAC is derived from the address (``52:54`` + its four bytes), so one address is always one MAC
and a switch never sees two guests fight over one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vmscale.errors import PermanentProviderError


@dataclass(frozen=True, slots=True)
class StaticAddressing:
    pool: ipaddress.IPv4Network  # the addresses handed out, instance N -> pool[N]
    network: ipaddress.IPv4Network  # the on-link subnet: its prefix length is what guests configure
    gateway: str = ""

    @classmethod
    def parse(cls, pool: str, network: str = "", gateway: str = "") -> StaticAddressing:
        """From config strings (already validated by the config schema)."""
        p = ipaddress.IPv4Network(pool, strict=False)
        n = ipaddress.IPv4Network(network, strict=False) if network else p
        return cls(p, n, gateway)

    def address(self, index: int) -> ipaddress.IPv4Address:
        """The address of instance ``index``; PermanentProviderError when the pool is too small."""
        if index < 1 or index >= self.pool.num_addresses - 1:
            raise PermanentProviderError(
                f"instance index {index} has no address in provider.libvirt.addresses.pool {self.pool} "
                f"({self.pool.num_addresses - 2} usable): give the group a larger pool"
            )
        addr = self.pool.network_address + index
        reserved = (self.network.network_address, self.network.broadcast_address)
        if str(addr) == self.gateway or addr in reserved:
            raise PermanentProviderError(
                f"address {addr} of instance {index} is the gateway or the network's own address: "
                "move provider.libvirt.addresses.pool so it excludes them"
            )
        return addr

    def cidr(self, index: int) -> str:
        """``A.B.C.D/LEN`` as the guest configures it (the network's prefix length, not the pool's)."""
        return f"{self.address(index)}/{self.network.prefixlen}"


def mac_for(address: str) -> str:
    """A locally administered unicast MAC that encodes the IPv4 address: 52:54:AA:BB:CC:DD."""
    packed = ipaddress.IPv4Address(address).packed
    return "52:54:" + ":".join(f"{b:02x}" for b in packed)
