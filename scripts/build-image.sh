#!/usr/bin/env bash
# Build (or reuse, when its inputs are unchanged) a guest image libvirt VMs boot from.
#   scripts/build-image.sh [--out DIR] [--force]            the lean image (boot = "kernel")
#                                                           default DIR: /var/lib/vmscale/image
#   scripts/build-image.sh --kind cloud [--out DIR]         a Debian disk with cloud-init (boot = "disk")
#                                                           default DIR: /var/lib/vmscale/cloud-image
# Needs root (debootstrap, chroot) and the host's Debian mirror; the first build takes ~2 min
# (lean) or ~4-5 min (cloud) on 2 cores, a rebuild with unchanged packages seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root .venv/bin/vmscale image build "$@"
args=()  # image info takes --kind and --out, not the build-only options
while [ $# -gt 0 ]; do
  case "$1" in --kind|--out) args+=("$1" "$2"); shift 2 ;; *) shift ;; esac
done
.venv/bin/vmscale image info "${args[@]}" 2>/dev/null | head -5 || true
