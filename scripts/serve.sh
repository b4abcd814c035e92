#!/usr/bin/env bash
# Run the REST service on the embedded defaults (SQLite + local index in kennelgate-home/).
# Prints an admin token when KENNELGATE_ADMIN_TOKEN is not set. Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/kennelgate ] || bash scripts/setup.sh
KG=.venv/bin/kennelgate
if [ -z "${KENNELGATE_ADMIN_TOKEN:-}" ]; then
  token=$($KG token admin --label serve.sh)
  echo "admin token (shown once): $token"
fi
exec $KG serve "$@"
