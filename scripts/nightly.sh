#!/usr/bin/env bash
# Nightly job: re-embed every stored photo and swap the new index in (the API keeps serving),
# then trim the decision log to its retention period.
#   scripts/nightly.sh          run once (cron, systemd timer)
#   scripts/nightly.sh --loop   run every day at $NIGHTLY_AT (default 03:00): the compose service
set -euo pipefail
cd "$(dirname "$0")/.."
KG=${KENNELGATE_BIN:-$( [ -x .venv/bin/kennelgate ] && echo .venv/bin/kennelgate || echo kennelgate )}

run_once() {
  "$KG" index rebuild && "$KG" db prune
}

if [ "${1:-}" = "--loop" ]; then
  at=${NIGHTLY_AT:-03:00}
  while :; do
    now=$(date +%s)
    next=$(date -d "today $at" +%s)
    [ "$next" -le "$now" ] && next=$(date -d "tomorrow $at" +%s)
    echo "next index rebuild at $(date -d "@$next")"
    sleep $((next - now))
    run_once || echo "nightly job failed; the previous index keeps serving" >&2
  done
else
  run_once
fi
