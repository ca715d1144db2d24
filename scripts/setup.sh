#!/usr/bin/env bash
# Set up (or reuse) everything vmscale needs. Idempotent; safe to run again.
#   scripts/setup.sh          Python side only: .venv with vmscale installed (enough for the demo)
#   scripts/setup.sh --full   also the system packages the tests need (QEMU, libvirt, HAProxy,
#                             Chromium, promtool, wrk, debootstrap, a guest kernel, and syslinux,
#                             mtools, dosfstools, sfdisk for the cloud image) and libvirt-python
set -euo pipefail
cd "$(dirname "$0")/.."

FULL=0
[ "${1:-}" = "--full" ] && FULL=1

SYSTEM_PACKAGES=(
  python3-venv python3-dev gcc make
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev pkg-config
  debootstrap linux-image-cloud-amd64 xorriso cpio e2fsprogs
  syslinux syslinux-common mtools dosfstools fdisk
  haproxy wrk prometheus chromium chromium-driver
  libxml2-utils iproute2 procps curl gnutls-bin
  postgresql
)

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$FULL" = 1 ]; then
  missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    log "system packages present"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

extras="dev"
[ "$FULL" = 1 ] && extras="dev,libvirt"
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-$extras"
if [ ! -f "$stamp" ]; then
  log "installing vmscale[$extras] into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e ".[$extras]"
  rm -f .venv/.installed-*
  touch "$stamp"
else
  log ".venv up to date"
fi
