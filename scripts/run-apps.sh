#!/usr/bin/env bash
# Started by `make run` next to the hub: waits for the hub, then runs the PGO (Mijn Zorgnet, which
# registers itself with the hub at its first start) and the admin console until stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
HUB_URL="http://127.0.0.1:${HUB_PORT:-8080}"
for _ in $(seq 1 180); do
  curl -fsS "$HUB_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
PGO_HUB_URL="$HUB_URL" PGO_PORT="${PGO_PORT:-8081}" PGO_HUB_COMMAND="$VENV/bin/hub" PGO_STATE_DIR=var/apps \
  "$VENV/bin/python" -m apps.pgo &
pgo=$!
ADMIN_HUB_URL="$HUB_URL" ADMIN_PORT="${ADMIN_PORT:-8082}" ADMIN_STATE_DIR=var/apps "$VENV/bin/python" -m apps.admin &
admin=$!
trap 'kill $pgo $admin 2>/dev/null; wait' EXIT INT TERM
wait
