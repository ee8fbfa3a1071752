#!/usr/bin/env bash
# Make the secrets deploy/compose.yaml mounts, under deploy/secrets/ (kept out of git):
#   db_password, database_url            PostgreSQL password and the hub's database URL
#   keys/jwks.json, audit-keys/keyring.json   the hub's token signing keys and audit checkpoint keys
#   adapter_*_key.pem                    each adapter's private key (register its public half: hub apps add --system)
#   huisarts_practice_token              the GP system's credentials for the huisarts adapter (placeholder)
# Existing files are kept, so running it again never replaces a key.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/secrets"
image="${HUB_IMAGE:-zorgnet-hub:0.1.0}"
mkdir -p "$out"
chmod 0700 "$out"
umask 077

[ -f "$out/db_password" ] || openssl rand -hex 24 > "$out/db_password"
[ -f "$out/database_url" ] || printf 'postgresql+asyncpg://hub:%s@postgres:5432/hub' "$(cat "$out/db_password")" > "$out/database_url"
# The GP system's credentials for the huisarts adapter: a placeholder until the practice issues one.
[ -f "$out/huisarts_practice_token" ] || echo "replace-with-the-practice-token" > "$out/huisarts_practice_token"
for adapter in gemeente huisarts wijkverpleging; do
  key="$out/adapter_${adapter}_key.pem"
  [ -f "$key" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key"
done

# The hub's keys, made by the image itself (hub keys init keeps existing ones), owned by the hub's uid.
if [ ! -f "$out/keys/jwks.json" ] || [ ! -f "$out/audit-keys/keyring.json" ]; then
  if command -v hub >/dev/null 2>&1; then
    hub keys init --var-dir "$out"
  else
    docker run --rm --user 0 -v "$out:/out" --entrypoint hub "$image" keys init --var-dir /out
  fi
fi
# Read by uid 10001 inside the containers (mounted read-only).
if [ "$(id -u)" = 0 ]; then
  chown -R 10001:10001 "$out/keys" "$out/audit-keys" "$out/database_url" "$out/huisarts_practice_token" "$out"/adapter_*_key.pem
else
  echo "note: run as root (or chown -R 10001:10001 deploy/secrets/...) so the containers' uid 10001 can read the keys" >&2
fi
echo "secrets in $out"
