#!/usr/bin/env bash
# The README's test command: set up if needed, then run every test (unit + integration).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/kennelgate ] || bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
