#!/usr/bin/env bash
# Build (or reuse, when its inputs are unchanged) the guest image libvirt VMs boot from.
#   scripts/build-image.sh [--out DIR] [--force]      default DIR: /var/lib/vmscale/image
# Needs root (debootstrap, chroot) and the host's Debian mirror; takes ~1 min the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root .venv/bin/vmscale image build "$@"
.venv/bin/vmscale image info "$@" 2>/dev/null | head -5 || true
