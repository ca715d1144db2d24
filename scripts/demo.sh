#!/usr/bin/env bash
# One command for a newcomer: set up, then run the autoscaling demo on local processes.
# Extra arguments go to `vmscale demo` (try --quick, --lb haproxy, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/vmscale demo "$@"
