#!/usr/bin/env bash
# Print a PostgreSQL admin URL the tests can use (postgresql://user@host:port/postgres).
# 1. HUB_TEST_PG_ADMIN_URL if set; 2. the machine's server on 127.0.0.1:5432 (user postgres, trust);
# 3. a throwaway cluster started from the installed binaries (initdb/pg_ctl) under var/pgtest, on loopback.
# Exits non-zero with a clear message when none can be had: tests then fail, they never skip.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

if [ -n "${HUB_TEST_PG_ADMIN_URL:-}" ]; then echo "$HUB_TEST_PG_ADMIN_URL"; exit 0; fi

probe() { # host port user
  if command -v pg_isready >/dev/null 2>&1; then pg_isready -q -h "$1" -p "$2" -U "$3" -t 3; else
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; fi
}

if probe 127.0.0.1 5432 postgres && psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  echo "postgresql://postgres@127.0.0.1:5432/postgres"; exit 0
fi

port=55432
dir="$here/var/pgtest"
find_bin() {
  for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent)")" /usr/lib/postgresql/*/bin /usr/local/bin; do
    [ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
  done
  return 1
}
initdb_bin="$(find_bin initdb)" || { echo "ensure-postgres: no PostgreSQL on 127.0.0.1:5432 and no initdb binary found; install PostgreSQL (apt-get install postgresql)" >&2; exit 1; }
pgctl_bin="$(find_bin pg_ctl)" || { echo "ensure-postgres: pg_ctl not found" >&2; exit 1; }
run_as=()
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd -r -M postgres
  mkdir -p "$dir"; chown -R postgres "$dir"
  run_as=(runuser -u postgres --)
fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
  mkdir -p "$dir/data"; [ "${#run_as[@]}" -gt 0 ] && chown -R postgres "$dir"
  "${run_as[@]}" "$initdb_bin" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
if ! probe 127.0.0.1 "$port" postgres; then
  "${run_as[@]}" "$pgctl_bin" -D "$dir/data" -l "$dir/log" -w -o "-h 127.0.0.1 -p $port -k /tmp -F" start >/dev/null
fi
probe 127.0.0.1 "$port" postgres || { echo "ensure-postgres: the throwaway cluster did not start; see $dir/log" >&2; exit 1; }
echo "postgresql://postgres@127.0.0.1:$port/postgres"
