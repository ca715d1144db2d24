"""What runs inside the guest: the initrd's ``/init``, the root's busybox init and its scripts.

The boot path is built for a fast TCG boot:

1. The host's cloud kernel is booted directly (no bootloader, no firmware menu).
2. A ~3 MB uncompressed initrd (static busybox + the few virtio modules the cloud kernel lacks
   built in) loads the modules, mounts ``/dev/vda`` and ``switch_root``\\ s into it.
3. busybox ``init`` (no systemd, nothing waiting on the network) sets a static address on eth0
   (10.0.2.15/24, QEMU's user-mode network; DHCP with ``vmscale.net=dhcp``, or the address vmscale
   assigned with ``vmscale.net=static vmscale.ip=A.B.C.D/LEN [vmscale.gw=...]`` on bridged networks), starts
   busybox ``acpid`` so an ACPI power-button press powers off cleanly, and ``respawn``\\ s the backend
   so it restarts if it dies.
4. CPU hotplug: there is no udev, so busybox ``uevent`` (respawned by init) runs ``hotplug.sh`` for
   every kernel event; for a CPU that appears it does what udev's rule
   ``SUBSYSTEM=="cpu", ACTION=="add", ATTR{online}="1"`` does, and for any CPU event it sends the
   backend SIGHUP, so the fib pool grows or shrinks at once (see ``workload/pool.py``). Event-driven
   rather than a polling loop: nothing runs while nothing changes (a loop costs ~14x under TCG), and
   it never fights a CPU that is being taken offline on purpose for a hot-remove.

Options come on the kernel command line as ``vmscale.KEY=VALUE`` (name, workers, port, fib_max_n...).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

# Modules the cloud kernel builds as modules, in dependency order (from its modules.dep).
INITRD_MODULES: tuple[str, ...] = (
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/virtio/virtio_balloon.ko",  # only domains with memory room have the device
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/char/hw_random/virtio-rng.ko",
    "kernel/drivers/input/evdev.ko",
    "kernel/drivers/acpi/button.ko",
)

INITRD_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod "/modules/$m" 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done
if ! mount -t ext4 -o rw,noatime /dev/vda /newroot; then
  echo "vmscale-initrd: cannot mount /dev/vda; dropping to a shell" >&2
  exec sh
fi
mount --move /dev /newroot/dev
umount /proc
exec switch_root /newroot /etc/vmscale/bin/init
"""

INITTAB = """::sysinit:/etc/vmscale/rc.sh
::respawn:/bin/busybox uevent /etc/vmscale/hotplug.sh
::respawn:/etc/vmscale/backend.sh
::shutdown:/etc/vmscale/stop.sh
::restart:/etc/vmscale/bin/init
"""

RC_SH = """#!/bin/busybox sh
# One-time boot: file systems, hostname, network, ACPI power button.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
[ -e /dev/null ] || $bb mount -t devtmpfs devtmpfs /dev
$bb mkdir -p /dev/pts /dev/shm
$bb mount -t devpts devpts /dev/pts
$bb mount -t tmpfs tmpfs /dev/shm
$bb mount -t tmpfs tmpfs /run
$bb mount -t tmpfs tmpfs /tmp
opt() { $bb sed -n "s/.*vmscale\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
name=$(opt name)
$bb hostname "${name:-vmscale}"
$bb ip link set lo up
$bb ip link set eth0 up
net=$(opt net)
if [ "$net" = dhcp ]; then
  $bb udhcpc -b -q -i eth0 -s /etc/vmscale/udhcpc.sh
elif [ "$net" = static ]; then
  # An address vmscale assigned (provider.libvirt.addresses): it stays with the guest across hosts.
  $bb ip addr add "$(opt ip)" dev eth0
  gw=$(opt gw)
  [ -n "$gw" ] && $bb ip route add default via "$gw"
else
  $bb ip addr add 10.0.2.15/24 dev eth0
  $bb ip route add default via 10.0.2.2
fi
$bb acpid -c /etc/acpi
# CPUs present but offline at boot (hot-added before the uevent listener ran): online them.
for f in /sys/devices/system/cpu/cpu*/online; do
  [ -e "$f" ] && [ "$($bb cat "$f")" = 0 ] && echo 1 > "$f"
done
echo "vmscale-guest: $name up at $(cut -d" " -f1 /proc/uptime) s, starting backend"
"""

HOTPLUG_SH = """#!/bin/busybox sh
# Run by 'busybox uevent' for every kernel uevent (environment: ACTION, SUBSYSTEM, DEVPATH...).
[ "$SUBSYSTEM" = cpu ] || exit 0
if [ "$ACTION" = add ] && [ -w "/sys$DEVPATH/online" ]; then
  echo 1 > "/sys$DEVPATH/online"
fi
echo "vmscale-guest: ${DEVPATH##*/} $ACTION at $(/bin/busybox cut -d" " -f1 /proc/uptime) s"
# The backend re-counts its CPUs now instead of at its next periodic look.
pid=$(/bin/busybox cat /run/vmscale-backend.pid 2>/dev/null) && /bin/busybox kill -HUP "$pid" 2>/dev/null
exit 0
"""

BACKEND_SH = """#!/bin/busybox sh
# Run by busybox init with 'respawn': if the backend dies, init starts it again.
bb=/bin/busybox
opt() { $bb sed -n "s/.*vmscale\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
name=$(opt name); workers=$(opt workers); port=$(opt port); fib=$(opt fib_max_n)
# workers=auto (or none): the fib pool follows the online CPUs, so a hot-added vCPU gets a worker.
set -- --host 0.0.0.0 --port "${port:-8000}" --name "${name:-vmscale}" --workers "${workers:-auto}"
set -- "$@" --pid-file /run/vmscale-backend.pid
[ -n "$fib" ] && set -- "$@" --fib-max-n "$fib"
# A snapshot-clone golden: start without a name and wait for the provider's push after each restore.
if [ "$(opt identity)" = push ]; then
  set -- "$@" --identity push --identity-token "$(opt identity_token)" --set-system
fi
# vmscale.debug=importtime on the kernel command line profiles the backend's imports (console log).
[ "$(opt debug)" = importtime ] && export PYTHONPROFILEIMPORTTIME=1
echo "vmscale-guest: backend starting at $($bb cut -d" " -f1 /proc/uptime) s"
cd /opt/vmscale
PYTHONPATH=/opt/vmscale PYTHONDONTWRITEBYTECODE=1 exec /usr/bin/python3 -m vmscale.workload.backend "$@"
"""

STOP_SH = """#!/bin/busybox sh
/bin/busybox killall -TERM python3 2>/dev/null
/bin/busybox sync
/bin/busybox mount -o remount,ro / 2>/dev/null
"""

POWER_BUTTON = """#!/bin/busybox sh
exec /bin/busybox poweroff
"""

UDHCPC_SH = """#!/bin/busybox sh
bb=/bin/busybox
case "$1" in
  bound|renew)
    $bb ip addr flush dev "$interface"
    $bb ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && $bb ip route add default via "${router%% *}" dev "$interface"
    ;;
esac
"""

GUEST_PKG_INIT = '"""vmscale inside a guest: only the workload backend is installed."""\n'

# path in the root file system -> (content, mode)
ROOT_FILES: dict[str, tuple[str, int]] = {
    "etc/inittab": (INITTAB, 0o644),
    "etc/vmscale/rc.sh": (RC_SH, 0o755),
    "etc/vmscale/backend.sh": (BACKEND_SH, 0o755),
    "etc/vmscale/stop.sh": (STOP_SH, 0o755),
    "etc/vmscale/hotplug.sh": (HOTPLUG_SH, 0o755),
    "etc/vmscale/udhcpc.sh": (UDHCPC_SH, 0o755),
    "etc/acpi/PWRF/00000080": (POWER_BUTTON, 0o755),
    "etc/hostname": ("vmscale\n", 0o644),
    "etc/hosts": ("127.0.0.1 localhost\n::1 localhost\n", 0o644),
    "opt/vmscale/vmscale/__init__.py": (GUEST_PKG_INIT, 0o644),
}


def install_root_files(root: Path) -> None:
    """Write the boot scripts into a root file system and point the init symlink at busybox."""
    for rel, (content, mode) in ROOT_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    link = root / "etc/vmscale/bin/init"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("/bin/busybox")


def _cpio_entry(out: io.BufferedIOBase, name: str, mode: int, data: bytes, ino: int) -> None:
    """One ``newc`` cpio record (the format the kernel unpacks an initramfs from)."""
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
    header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
    out.write(header + name_b)
    out.write(b"\0" * ((4 - (len(header) + len(name_b)) % 4) % 4))
    out.write(data)
    out.write(b"\0" * ((4 - len(data) % 4) % 4))


def write_initrd(dest: Path, busybox: Path, modules_dir: Path) -> list[str]:
    """Write an uncompressed initramfs; returns the module file names it contains.

    Uncompressed on purpose: under TCG, decompressing costs more than reading a few MB more.
    """
    entries: list[tuple[str, int, bytes]] = [
        ("bin", 0o040755, b""),
        ("modules", 0o040755, b""),
        ("init", 0o100755, INITRD_INIT.encode()),
        ("bin/busybox", 0o100755, busybox.read_bytes()),
    ]
    names: list[str] = []
    for rel in INITRD_MODULES:
        src = modules_dir / rel
        if not src.is_file():
            raise FileNotFoundError(
                f"kernel module {src} is missing (is the kernel's modules package installed?)"
            )
        names.append(os.path.basename(rel))
        entries.append((f"modules/{names[-1]}", 0o100644, src.read_bytes()))
    entries.append(("modules.order", 0o100644, ("\n".join(names) + "\n").encode()))
    tmp = dest.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for ino, (name, mode, data) in enumerate(entries, start=1):
            _cpio_entry(f, name, mode, data, ino)
        _cpio_entry(f, "TRAILER!!!", 0, b"", 0)
    tmp.replace(dest)
    return names
