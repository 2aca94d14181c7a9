#!/usr/bin/env bash
# Runs the whole test suite. Tests of the store and of shared counters talk
# to a real PostgreSQL and a real Redis: this script finds them on their
# usual local ports, or installs (Debian packages) and starts throwaway ones
# in a temporary directory, on free ports, and stops them afterwards.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p portico-store  # arguments go to `cargo test`
#
# PORTICO_TEST_POSTGRES and PORTICO_TEST_REDIS, when set, are used as they
# are. PORTICO_TEST_THROWAWAY=1 starts private servers even when the usual
# ports answer.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=$(mktemp -d /tmp/portico-test.XXXXXX)
pids=()
pg_stop=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ ${#pg_stop[@]} -gt 0 ]; then "${pg_stop[@]}" >/dev/null 2>&1 || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

say() { echo "== $*" >&2; }

reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
install_packages() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

wait_for() {
  local host=$1 port=$2 what=$3
  for _ in $(seq 1 100); do
    if reachable "$host" "$port"; then return 0; fi
    sleep 0.1
  done
  echo "$what did not start on $host:$port" >&2
  exit 1
}

start_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    say "installing PostgreSQL (Debian package)"
    install_packages postgresql
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  local port data run=()
  port=$(free_port)
  data="$scratch/pg"
  mkdir -p "$data"
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$scratch" "$data"
    run=(runuser -u postgres --)
  fi
  say "starting a throwaway PostgreSQL on 127.0.0.1:$port"
  "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null
  "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  pg_stop=("${run[@]}" "$bindir/pg_ctl" -D "$data" -m immediate stop)
  wait_for 127.0.0.1 "$port" PostgreSQL
  export PORTICO_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
}

start_redis() {
  if ! command -v redis-server >/dev/null; then
    say "installing Redis (Debian package)"
    install_packages redis-server
  fi
  local port
  port=$(free_port)
  say "starting a throwaway Redis on 127.0.0.1:$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$scratch" >"$scratch/redis.log" 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1 "$port" Redis
  export PORTICO_TEST_REDIS="redis://127.0.0.1:$port"
}

throwaway=${PORTICO_TEST_THROWAWAY:-}
if [ -z "${PORTICO_TEST_POSTGRES:-}" ]; then
  if [ -z "$throwaway" ] && reachable 127.0.0.1 5432; then
    export PORTICO_TEST_POSTGRES="postgres://postgres@127.0.0.1:5432/postgres"
  else
    start_postgres
  fi
fi
if [ -z "${PORTICO_TEST_REDIS:-}" ]; then
  if [ -z "$throwaway" ] && reachable 127.0.0.1 6379; then
    export PORTICO_TEST_REDIS="redis://127.0.0.1:6379"
  else
    start_redis
  fi
fi
# The Redis outage tests start and stop their own redis-server.
if ! command -v redis-server >/dev/null; then
  say "installing Redis (Debian package) for the outage tests"
  install_packages redis-server
fi

say "PostgreSQL: $PORTICO_TEST_POSTGRES"
say "Redis: $PORTICO_TEST_REDIS"
if [ $# -gt 0 ]; then
  cargo test "$@"
else
  cargo test --workspace
fi
