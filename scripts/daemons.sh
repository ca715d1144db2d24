#!/usr/bin/env bash
# Start virtlogd and libvirtd when their sockets are absent (there is no systemd as PID 1 here).
# Idempotent: does nothing when they already answer. Fails loudly when they cannot start.
set -euo pipefail

log() { printf '\033[1;34m[daemons]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

as_root mkdir -p /run/libvirt /var/log/libvirt/qemu /var/lib/libvirt/qemu

if ! [ -S /run/libvirt/virtlogd-sock ] || ! pgrep -x virtlogd >/dev/null; then
  log "starting virtlogd"
  as_root rm -f /run/libvirt/virtlogd-sock /run/virtlogd.pid
  as_root virtlogd -d
fi

if ! timeout 10 virsh -c qemu:///system version >/dev/null 2>&1; then
  log "starting libvirtd"
  pgrep -x libvirtd >/dev/null && as_root pkill -x libvirtd || true
  as_root rm -f /run/libvirtd.pid
  as_root libvirtd -d
  for _ in $(seq 1 50); do
    timeout 5 virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
timeout 10 virsh -c qemu:///system version >/dev/null || { echo "libvirtd did not come up" >&2; exit 1; }
log "libvirtd answers on qemu:///system"
