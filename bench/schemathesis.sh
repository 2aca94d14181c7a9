#!/usr/bin/env bash
# Fuzzes the admin API against its own OpenAPI document with schemathesis:
# every generated request's answer must be documented (status, headers,
# content type, body schema), no 5xx, negative data refused, methods the
# document does not list answered 405.
#
# Starts the admin API alone (the `admin_server` example of portico-control:
# the real router and store, SQLite in a temporary directory, with a
# stand-in node that compiles every change with portico_config), installs
# schemathesis into a virtualenv under the target directory if absent, and
# fails when schemathesis reports a failure.
#
# Usage: bench/schemathesis.sh [--max-examples N] [--storage URL] [extra schemathesis args]
set -euo pipefail

MAX_EXAMPLES=50
STORAGE=""
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --max-examples) MAX_EXAMPLES=$2; shift 2 ;;
    --storage) STORAGE=$2; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/portico-schemathesis.XXXXXX)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

venv="$target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "Installing schemathesis into $venv." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
token="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
[ -n "$STORAGE" ] || STORAGE="sqlite://$work/data/portico.db"

(cd "$root" && cargo build -q -p portico-control --example admin_server)
PORTICO_ADMIN_TOKEN="$token" "$target/debug/examples/admin_server" "127.0.0.1:$port" "$STORAGE" \
  2> "$work/server.log" &
server=$!
for _ in $(seq 600); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.05
done

# Two passes: `DELETE /admin/v1/tokens/{id}` can revoke the very token the
# run uses (its id is in `GET /admin/v1/tokens`), so it runs last, alone.
status=0
run() {
  # From the work directory: schemathesis keeps a cache where it runs.
  (cd "$work" && "$venv/bin/schemathesis" --config-file "$root/bench/schemathesis.toml" run \
    "http://127.0.0.1:$port/admin/openapi.json" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --seed 1 \
    "$@" "${EXTRA[@]}" 2>&1 | tee -a "$work/schemathesis.log"
  exit "${PIPESTATUS[0]}")
}
run --exclude-operation-id revoke-token || status=$?
run --include-operation-id revoke-token || status=$?
cases=$(grep -Eo '[0-9]+ generated' "$work/schemathesis.log" | awk '{n += $1} END {print n + 0}')
echo "schemathesis: $cases generated test cases in two passes."
if [ "$status" -ne 0 ]; then
  echo "schemathesis failed (exit $status); the admin API's log:" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
