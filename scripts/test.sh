#!/usr/bin/env bash
# One command for every test: full set-up (system packages, .venv, daemons, guest image), then
# the static checks and every tier (unit, integration, e2e). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --full
scripts/daemons.sh

log() { printf '\033[1;34m[test]\033[0m %s\n' "$*"; }
export PATH="$PWD/.venv/bin:$PATH"

log "ruff";  ruff check src tests benchmarks
log "mypy";  mypy
log "import layers"; lint-imports

log "pytest (unit, integration, e2e)"
pytest -p no:cacheprovider "$@"
