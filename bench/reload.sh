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

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/portico-reload.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "$tool is missing: run bench/proxy.sh once, it installs nginx and wrk" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
UP=$(free_port); POR=$(free_port); ADM=$(free_port)

(cd "$root" && cargo build --release -q -p portico)
PORTICO="$root/target/release/portico"

mkdir -p "$work/up"
cat > "$work/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/up/nginx.pid; error_log $work/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $work/up; proxy_temp_path $work/up; fastcgi_temp_path $work/up; uwsgi_temp_path $work/up; scgi_temp_path $work/up;
  server { listen 127.0.0.1:$UP backlog=4096; location / { default_type text/plain; return 200 "hello"; } }
}
CONF
taskset -c 0 "$NGINX" -c "$work/up/nginx.conf" -p "$work/up" & pids+=($!)

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

PORTICO_LOG=warn taskset -c 1 "$PORTICO" serve -c "$work/portico.yaml" & pids+=($!)
POR_PID=$!
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$ADM/readyz" && break; sleep 0.05; done
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
