#!/usr/bin/env bash
# Reload under load: 10,000 APIs configured, wrk running against one of
# them, a new API added to the file and SIGHUP sent. Prints how long the
# change took to go live and what wrk saw (non-2xx, socket errors).
#
# Usage: bench/reload.sh [--apis N] [--duration S]
set -euo pipefail

APIS=10000
DURATION=20
while [ $# -gt 0 ]; do
  case "$1" in
    --apis) APIS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. "$(dirname "$0")/lib.sh"

UP=$(free_port); POR=$(free_port); ADM=$(free_port)

build_portico

start_upstream "$UP"

write_config() { # extra API (name) or empty
  python3 - "$work/portico.yaml" "$APIS" "$POR" "$ADM" "$UP" "$work" "${1:-}" <<'PY'
import sys
path, n, port, adm, up, work, extra = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
with open(path + ".tmp", "w") as f:
    f.write(f'server:\n  proxy: {{ listen: "127.0.0.1:{port}" }}\n  admin: {{ listen: "127.0.0.1:{adm}" }}\n')
    f.write(f'  access_log: "off"\n  workers: 1\nstorage: "sqlite://{work}/data/portico.db"\napis:\n')
    for i in range(n):
        f.write(f'  - {{ name: svc-{i}, base_path: /svc-{i}, upstream: {{ targets: ["http://127.0.0.1:{up}"] }} }}\n')
    if extra:
        f.write(f'  - {{ name: {extra}, base_path: /{extra}, upstream: {{ targets: ["http://127.0.0.1:{up}"] }} }}\n')
import os
os.replace(path + ".tmp", path)
PY
}

write_config
start=$(date +%s.%N)
"$PORTICO" check -c "$work/portico.yaml" >/dev/null
echo "portico check with $APIS APIs: $(python3 -c "print(round($(date +%s.%N) - $start, 3))") s"

t0=$(date +%s.%N)
PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/portico.yaml" & pids+=($!)
POR_PID=$!
for _ in $(seq 1200); do curl -sf -o /dev/null "http://127.0.0.1:$ADM/readyz" && break; sleep 0.05; done
echo "first start (seeding the store with $APIS APIs) until ready: $(python3 -c "print(round($(date +%s.%N) - $t0, 3))") s"
echo "RSS after start: $(awk '/VmRSS/ {print $2 / 1024 " MiB"}' /proc/$POR_PID/status)"

taskset -c 0 wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$POR/svc-$((APIS / 2))/" > "$work/wrk.txt" &
WRK=$!
sleep $((DURATION / 4))

write_config new-api
t0=$(date +%s.%N)
kill -HUP "$POR_PID"
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$POR/new-api/")" = 200 ]; do sleep 0.01; done
t1=$(date +%s.%N)
echo "change live after SIGHUP: $(python3 -c "print(round(($t1 - $t0) * 1000))") ms"

wait "$WRK"
grep -E "Requests/sec|requests in|Non-2xx|Socket errors" "$work/wrk.txt" || true
grep -q "Non-2xx\|Socket errors" "$work/wrk.txt" || echo "wrk: no non-2xx answers, no socket errors"
