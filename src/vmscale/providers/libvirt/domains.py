"""Where a domain's files live on this machine, and what libvirt's domain states mean to vmscale.

Small pure-ish helpers the libvirt provider (and the per-host provider in ``vmscale.hosts``) share.
"""

from __future__ import annotations

import hashlib
import logging
import stat
from pathlib import Path

import libvirt

from vmscale.providers.base import ProviderStatus

log = logging.getLogger("vmscale.providers.libvirt")

_STATE = {
    libvirt.VIR_DOMAIN_NOSTATE: ProviderStatus.STARTING,
    libvirt.VIR_DOMAIN_RUNNING: ProviderStatus.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: ProviderStatus.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: ProviderStatus.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: ProviderStatus.STOPPED,
    libvirt.VIR_DOMAIN_SHUTOFF: ProviderStatus.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: ProviderStatus.STOPPED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: ProviderStatus.PAUSED,
}
# vmscale never makes NVRAM or TPM state; managed-save images and snapshot metadata it may.
UNDEFINE_FLAGS = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA


def reachable_by_others(path: Path) -> bool:
    """True when every ancestor of ``path`` lets 'other' users traverse it (QEMU runs as libvirt-qemu)."""
    return all(not (p.exists() and not p.stat().st_mode & stat.S_IXOTH) for p in [path, *path.parents])


def domain_status(dom: libvirt.virDomain) -> ProviderStatus:
    state, _reason = dom.state()
    status = _STATE.get(state, ProviderStatus.STOPPED)
    if status is ProviderStatus.STOPPED and dom.hasManagedSaveImage():
        return ProviderStatus.SAVED
    return status


def bring_up(dom: libvirt.virDomain) -> tuple[ProviderStatus, int, str]:
    """Start (or continue) a domain an earlier launch left defined, saved, paused or stopped:
    (status, vCPUs, UUID) once it runs."""
    status = domain_status(dom)
    if status is ProviderStatus.PAUSED:
        dom.resume()
    elif status in (ProviderStatus.STOPPED, ProviderStatus.SAVED, ProviderStatus.STARTING):
        dom.create()
    return ProviderStatus.RUNNING, int(dom.info()[3]), str(dom.UUIDString())


def destroy_and_undefine(dom: libvirt.virDomain) -> None:
    """Stop a domain at once and forget it (with its managed-save image). A domain already gone is
    done; one that stopped by itself between the check and the destroy (its ACPI shutdown finished
    just then: libvirt answers "domain is not running") is not a failure either, or the terminate
    would be reported as failed and retried after a back-off for nothing."""
    try:
        if dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or dom.isActive():
                    raise
        dom.undefineFlags(UNDEFINE_FLAGS)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise


def leased_address(dom: libvirt.virDomain) -> str:
    """The guest's IPv4 address from the libvirt network's DHCP leases ('' when not known yet)."""
    try:
        ifaces = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
    except libvirt.libvirtError:
        return ""
    for iface in (ifaces or {}).values():
        for addr in iface.get("addrs") or []:
            if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                return str(addr["addr"])
    return ""


def prepare_files_dir(state_dir: Path, instance_dir: str) -> Path:
    base = Path(state_dir).resolve() / "libvirt"
    if instance_dir:
        base = Path(instance_dir)
    elif not reachable_by_others(base.parent):
        digest = hashlib.sha256(str(base).encode()).hexdigest()[:10]
        fallback = Path("/var/lib/vmscale/instances") / digest
        log.info("%s is not reachable by the QEMU user; instance files go to %s", base, fallback)
        base = fallback
    for sub in ("overlays", "seeds", "console"):
        (base / sub).mkdir(parents=True, exist_ok=True)
        (base / sub).chmod(0o755)
    base.chmod(0o755)
    return base
