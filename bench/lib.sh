# Shared by the benchmark scripts: a work directory removed on exit with
# every process started into `pids`, tool installation from Debian, free
# loopback ports, and the trivial upstream (nginx answering GET / with 5
# bytes) that every benchmark proxies to. Source it; it sets `root`,
# `work`, `pids`, `NGINX`.

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/portico-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

install_tools() {
  local missing=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  command -v wrk >/dev/null || missing+=(wrk)
  [ ${#missing[@]} -eq 0 ] && return
  echo "Installing ${missing[*]} (services are not started)." >&2
  # Keep the packages' own services from starting during install.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  for _ in $(seq 1200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}


install_tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# start_upstream PORT: nginx on CPU 0 answering every GET with "hello".
start_upstream() {
  mkdir -p "$work/up"
  cat > "$work/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/up/nginx.pid; error_log $work/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $work/up; proxy_temp_path $work/up; fastcgi_temp_path $work/up; uwsgi_temp_path $work/up; scgi_temp_path $work/up;
  server { listen 127.0.0.1:$1 backlog=4096; location / { default_type text/plain; return 200 "hello"; } }
}
CONF
  taskset -c 0 "$NGINX" -c "$work/up/nginx.conf" -p "$work/up" & pids+=($!)
}

# nginx_proxy_config DIR PORT: DIR/nginx.conf for nginx as the reverse
# proxy of BENCHMARK.md (one worker, no master, upstream keep-alive 256) on
# PORT in front of the upstream on $UP.
nginx_proxy_config() {
  local work_dir=$1 port=$2
  mkdir -p "$work_dir"
  cat > "$work_dir/nginx.conf" <<CONF
worker_processes 1; master_process off; daemon off; pid $work_dir/nginx.pid; error_log $work_dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $work_dir; proxy_temp_path $work_dir; fastcgi_temp_path $work_dir; uwsgi_temp_path $work_dir; scgi_temp_path $work_dir;
  upstream backend { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$port backlog=4096;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
}

# limits_config FILE PORT ADMIN EXTRA: the node DESIGN.md's limits target is
# measured on: one API in front of the upstream on $UP with api_key and a
# rate_limit nothing reaches (by app, 10^9 per hour), the access log to a
# file, metrics on as always. EXTRA is one more top-level line (`redis:`)
# or empty.
limits_config() {
  cat > "$1" <<CONF
server:
  proxy: { listen: "127.0.0.1:$2" }
  admin: { listen: "127.0.0.1:$3" }
  access_log: "$work/access-$2.log"
  workers: 1
storage: "sqlite://$work/data-$2/portico.db"
$4
apis:
  - name: bench
    base_path: /
    upstream: { targets: ["http://127.0.0.1:$UP"] }
    policies:
      - api_key: {}
      - rate_limit: { limit: 1000000000, window: 1h, by: app }
products:
  - { name: all, apis: [bench] }
developers:
  - { email: bench@example.com, name: Bench }
apps:
  - { name: bench-app, developer: bench@example.com, products: [all], api_keys: ["bench-key-limits-01"] }
CONF
}

# validate_config FILE PORT ADMIN: the node the `validate` cost is measured
# on, in front of the upstream on $UP: three APIs, `plain` (no spec, under
# /plain), `routed` (the pet store spec, /routed/v1) and `validated` (the
# spec and `validate: {}`, /store/v1), access log off. The spec is copied
# next to FILE.
validate_config() {
  cp "$root/bench/validate/petstore.yaml" "$(dirname "$1")/petstore.yaml"
  cat > "$1" <<CONF
server:
  proxy: { listen: "127.0.0.1:$2" }
  admin: { listen: "127.0.0.1:$3" }
  access_log: "off"
  workers: 1
storage: "sqlite://$work/data-$2/portico.db"
apis:
  - name: plain
    base_path: /plain
    upstream: { targets: ["http://127.0.0.1:$UP"] }
  - name: routed
    base_path: /routed/v1
    spec: petstore.yaml
    upstream: { targets: ["http://127.0.0.1:$UP"] }
  - name: validated
    base_path: /store/v1
    spec: petstore.yaml
    upstream: { targets: ["http://127.0.0.1:$UP"] }
    policies:
      - validate: {}
CONF
}

# post_script FILE: a wrk script sending the 1 KiB JSON POST of
# bench/validate/pet.json (with the header parameter the spec declares).
post_script() {
  python3 - "$root/bench/validate/pet.json" "$1" <<'PY'
import json, sys
body = open(sys.argv[1]).read()
with open(sys.argv[2], "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write("wrk.body = " + json.dumps(body) + "\n")
    f.write('wrk.headers["Content-Type"] = "application/json"\n')
    f.write('wrk.headers["x-request-tag"] = "bench"\n')
PY
}
