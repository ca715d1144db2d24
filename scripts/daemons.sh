#!/usr/bin/env bash
# Start virtlogd and libvirtd when they do not answer (there is no systemd as PID 1 here).
# Idempotent: does nothing when they already answer. Fails loudly when they cannot start.
# A libvirtd that has a pid file but does not answer is stopped by its pid (never by name).
set -euo pipefail

log() { printf '\033[1;34m[daemons]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

for bin in virtlogd libvirtd virsh; do
  command -v "$bin" >/dev/null || { echo "$bin is missing: apt-get install libvirt-daemon-system" >&2; exit 1; }
done
as_root mkdir -p /run/libvirt /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/lib/vmscale
as_root chmod 0755 /var/lib/vmscale

if ! [ -S /run/libvirt/virtlogd-sock ] || ! alive /run/virtlogd.pid; then
  log "starting virtlogd"
  as_root rm -f /run/libvirt/virtlogd-sock /run/libvirt/virtlogd-admin-sock
  alive /run/virtlogd.pid || as_root rm -f /run/virtlogd.pid
  as_root virtlogd -d
  for _ in $(seq 1 50); do [ -S /run/libvirt/virtlogd-sock ] && break; sleep 0.1; done
fi

if ! timeout 10 virsh -c qemu:///system version >/dev/null 2>&1; then
  if alive /run/libvirtd.pid; then
    log "libvirtd (pid $(cat /run/libvirtd.pid)) does not answer: restarting it"
    as_root kill "$(cat /run/libvirtd.pid)" || true
    for _ in $(seq 1 50); do alive /run/libvirtd.pid || break; sleep 0.1; done
  fi
  log "starting libvirtd"
  as_root rm -f /run/libvirtd.pid
  as_root libvirtd -d
  for _ in $(seq 1 100); do
    timeout 5 virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
timeout 10 virsh -c qemu:///system version >/dev/null || { echo "libvirtd did not come up" >&2; exit 1; }
log "libvirtd answers on qemu:///system"
