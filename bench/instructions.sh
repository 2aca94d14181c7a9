#!/usr/bin/env bash
# User-space instructions per proxied request under callgrind, for the two
# configurations of bench/proxy.sh that DESIGN.md sets targets for:
#   plain    one API, no policies, access log off
#   limits   api_key + rate_limit (in-process, by app, a limit nothing
#            reaches) + access log to a file; metrics are always on
# Instruction counts are repeatable and do not depend on machine load,
# unlike requests/s on a shared machine.
#
# Each configuration runs as its own release node (one worker) under
# callgrind in front of the nginx upstream of lib.sh. After a warm-up, N
# and then 2N GETs go over one keep-alive connection (curl), with a dump
# after each phase; (I(2N) - I(N)) / N is the figure, so whatever the first
# phase still paid once (lazy initialisation, buffer growth) cancels out.
#
# Usage: bench/instructions.sh [N] [--keep DIR]
#   N defaults to 2000. --keep DIR copies the callgrind dumps of the 2N
#   phase to DIR (cg-plain.out, cg-limits.out) for callgrind_annotate.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=2000
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP=$2; shift 2 ;;
    *) N=$1; shift ;;
  esac
done
command -v valgrind >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}

build_portico

UP=$(free_port)
start_upstream "$UP"
wait_port "$UP"

# config NAME PORT ADMIN: writes $work/NAME.yaml.
config() {
  if [ "$1" = plain ]; then
    cat > "$work/$1.yaml" <<CONF
server:
  proxy: { listen: "127.0.0.1:$2" }
  admin: { listen: "127.0.0.1:$3" }
  access_log: "off"
  workers: 1
storage: "sqlite://$work/data-$1/portico.db"
apis:
  - name: bench
    base_path: /
    upstream: { targets: ["http://127.0.0.1:$UP"] }
CONF
  else
    limits_config "$work/$1.yaml" "$2" "$3" ""
  fi
}

# send PORT COUNT: COUNT GETs over one connection; fails unless all are 200.
send() {
  local cfg="$work/urls.txt"
  : > "$cfg"
  for _ in $(seq "$2"); do
    printf 'url = "http://127.0.0.1:%s/bench"\noutput = "/dev/null"\n' "$1" >> "$cfg"
  done
  local codes
  codes=$(taskset -c 0 curl -s --config "$cfg" -H "x-api-key: $LIMITS_KEY" \
    -w '%{http_code}\n' | sort | uniq -c)
  if [ "$(echo "$codes" | awk '{print $2}')" != "200" ]; then
    echo "unexpected statuses: $codes" >&2
    exit 1
  fi
}

# total FILE: the instruction total of one callgrind dump.
total() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }

# dump NAME HINT: dumps (and zeroes) the counters of node NAME, prints the
# dump's file once it is complete. (A hint starting with a digit would be
# taken for a process id by callgrind_control.)
dump() {
  local before
  before=$(ls "$work"/cg-"$1".out.* 2>/dev/null | wc -l)
  callgrind_control -d "$2" "$VG" >/dev/null 2>&1
  for _ in $(seq 600); do
    local newest
    newest=$(ls -t "$work"/cg-"$1".out.* 2>/dev/null | head -1)
    if [ "$(ls "$work"/cg-"$1".out.* 2>/dev/null | wc -l)" -gt "$before" ] && grep -q '^totals:' "$newest"; then
      echo "$newest"
      return
    fi
    sleep 0.1
  done
  echo "callgrind wrote no dump for $1" >&2
  exit 1
}

declare -A per
for name in plain limits; do
  POR=$(free_port); ADM=$(free_port)
  config "$name" "$POR" "$ADM"
  PORTICO_LOG=warn taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$work/cg-$name.out" \
    "$PORTICO" serve -c "$work/$name.yaml" 2>"$work/valgrind-$name.log" & pids+=($!)
  VG=$!
  wait_port "$POR"
  send "$POR" 200
  callgrind_control -z "$VG" >/dev/null 2>&1
  send "$POR" "$N"
  one=$(total "$(dump "$name" once)")
  send "$POR" $((2 * N))
  file=$(dump "$name" twice)
  two=$(total "$file")
  [ -n "$KEEP" ] && mkdir -p "$KEEP" && cp "$file" "$KEEP/cg-$name.out"
  per[$name]=$(((two - one) / N))
  echo "$name: $one instructions for $N requests, $two for $((2 * N)); ${per[$name]} per request"
  kill "$VG"; wait "$VG" 2>/dev/null || true
done
python3 - "${per[plain]}" "${per[limits]}" <<'PY'
import sys
plain, limits = map(int, sys.argv[1:])
print(f"limits / plain: {limits / plain:.3f} (+{limits - plain} instructions per request)")
PY
