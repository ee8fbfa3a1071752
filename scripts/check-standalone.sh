#!/usr/bin/env bash
# The hub stands alone: check it the way a new user meets it, on the committed tree only.
#   scripts/check-standalone.sh COPY_DIR
# COPY_DIR is a copy of the committed tree (git archive) in an otherwise empty directory, where
# `make test` has already run (so COPY_DIR/.venv exists). This script then
#   1. starts `make run` there (the embedded SQLite default, demo network) and runs the README tour
#      against it, verbatim;
#   2. installs the tree as a wheel (not editable) into a fresh virtualenv, starts `hub serve --demo`
#      from / (any working directory) and runs the README tour against that.
# Both hubs listen on free loopback ports and are stopped afterwards, whatever happens.
set -euo pipefail
copy="$(cd "$1" && pwd)"
work="$(mktemp -d)"
pids=()
# each hub runs in its own process group (setsid), so stopping it stops make and hub serve alike
stop() { kill -TERM -- "-$1" 2>/dev/null || true; }
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # port log
  for _ in $(seq 240); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "check-standalone: the hub on port $1 did not become ready; its log:" >&2; tail -40 "$2" >&2; return 1
}
run_tour() { # port var_dir bin_dir
  "$3/python" "$copy/scripts/readme_tour.py" "$copy/README.md" > "$work/tour.sh"
  (cd "$copy" && PATH="$3:$PATH" HUB_PORT="$1" HUB_VAR_DIR="$2" bash "$work/tour.sh" > "$work/tour.out")
  echo "check-standalone: README tour passed on port $1 ($(grep -c '^true$' "$work/tour.out") checks)"
}

test ! -e "$copy/../shared" || { echo "check-standalone: $copy/../shared exists; the copy must stand alone" >&2; exit 1; }

# 1. make run, in the copy
port="$(free_port)"; pgo_port="$(free_port)"; admin_port="$(free_port)"
(cd "$copy" && HUB_PORT="$port" PGO_PORT="$pgo_port" ADMIN_PORT="$admin_port" exec setsid make run \
  > "$work/make-run.log" 2>&1) & pids+=($!)
wait_ready "$port" "$work/make-run.log"
run_tour "$port" "$copy/var" "$copy/.venv/bin"
for app in "$pgo_port" "$admin_port"; do  # make run also serves the PGO and the admin console
  for _ in $(seq 120); do curl -sf -o /dev/null "http://127.0.0.1:$app/" && break; sleep 0.5; done
  curl -sf -o /dev/null "http://127.0.0.1:$app/" || { echo "check-standalone: no app on port $app" >&2; tail -30 "$work/make-run.log" >&2; exit 1; }
done
echo "check-standalone: make run serves the PGO and the admin console"
stop "${pids[0]}"

# 2. a wheel in a fresh virtualenv, served from /
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$copy[postgres]" > "$work/pip.log" 2>&1 || { tail -30 "$work/pip.log" >&2; exit 1; }
port="$(free_port)"
(cd / && HUB_PORT="$port" HUB_VAR_DIR="$work/var" HUB_DATABASE_URL="sqlite+aiosqlite:///$work/var/hub.db" \
  exec setsid "$work/venv/bin/hub" serve --demo > "$work/wheel.log" 2>&1) & pids+=($!)
wait_ready "$port" "$work/wheel.log"
run_tour "$port" "$work/var" "$work/venv/bin"
echo "check-standalone: OK (make run in a lone copy, and a wheel served from /)"
