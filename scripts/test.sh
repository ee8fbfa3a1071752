#!/usr/bin/env bash
# `make test`: the whole suite as two pytest processes side by side (the machine's cores are used, the
# wall time is about halved):
#   sqlite      every test on SQLite, and every test that needs no database backend
#   postgresql  the per-backend tests on PostgreSQL (HUB_TEST_ONLY_BACKEND=1)
# Each writes its log under var/test-logs/; both logs are printed when both are done. Exits non-zero when
# either fails. Usage: scripts/test.sh PG_ADMIN_URL [pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
pg_url="$1"; shift
logs=var/test-logs
mkdir -p "$logs"
pytest=.venv/bin/pytest
export PYTHONUNBUFFERED=1  # the logs show progress while the run goes on
common=(-q -p no:cacheprovider -rfE "$@")

echo "make test: SQLite and PostgreSQL side by side; logs in $logs/ (printed when both are done)"
start=$(date +%s)
HUB_TEST_PG_ADMIN_URL="$pg_url" HUB_TEST_BACKENDS=sqlite \
  "$pytest" "${common[@]}" --junitxml="$logs/sqlite.xml" >"$logs/sqlite.log" 2>&1 &
sqlite_pid=$!
HUB_TEST_PG_ADMIN_URL="$pg_url" HUB_TEST_BACKENDS=postgresql HUB_TEST_ONLY_BACKEND=1 \
  "$pytest" "${common[@]}" --junitxml="$logs/postgresql.xml" >"$logs/postgresql.log" 2>&1 &
pg_pid=$!
trap 'kill $sqlite_pid $pg_pid 2>/dev/null' INT TERM

wait $sqlite_pid; sqlite_rc=$?
wait $pg_pid; pg_rc=$?
for b in sqlite postgresql; do
  echo "===== $b ====="
  cat "$logs/$b.log"
done
echo "make test: sqlite exit $sqlite_rc, postgresql exit $pg_rc, $(( $(date +%s) - start )) s"
[ "$sqlite_rc" = 0 ] && [ "$pg_rc" = 0 ]
