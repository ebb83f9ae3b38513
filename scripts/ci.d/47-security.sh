#!/usr/bin/env bash
# Security suite (issue 14): the attacks of internal/security/attack_test.go (build
# tag security) against the real llm-scheduler binary in production mode
# (auth on, encryption key), first on the embedded default (SQLite +
# in-process Redis), then on MySQL + Redis: GraphQL fragment fan-out, a
# key revoked by another process on an open websocket, idempotency keys
# across callers, CSRF, SSRF to the server itself and cloud metadata,
# malformed bodies in the log, nested and URL secrets, slowloris.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

scratch_dir
go build -o "$work/llm-scheduler" .
key=$(head -c 32 /dev/urandom | base64)

# run_suite BACKEND: writes the config, starts the server, runs the attacks.
run_suite() {
  local backend=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  {
    echo "app: {env: production}"
    echo "server: {host: 127.0.0.1, port: $port, read_timeout: 2s, read_header_timeout: 2s, idle_timeout: 5s, drain_window: 0s}"
    echo "auth: {encryption_key: \"$key\"}"
    echo "log: {level: info}"
    if [ "$backend" = embedded ]; then
      echo "database: {driver: sqlite, sqlite_path: $work/sec.db}"
      echo "redis: {embedded: true}"
    else
      echo "database: {driver: mysql, host: 127.0.0.1, port: 3306, username: root, password: \"\", database: $db_name, auto_migrate: true}"
      echo "redis: {host: 127.0.0.1, port: 6379, db: $redis_db, key_prefix: llmsched-sec}"
    fi
  } >"$work/$backend.yaml"
  (cd "$work" && exec ./llm-scheduler serve --config "$work/$backend.yaml" >"$work/$backend.log" 2>&1) &
  pid=$!
  for _ in $(seq 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$work/$backend.log" >&2; echo "server exited" >&2; exit 1; fi
    sleep 0.5
  done
  step "security suite on $backend"
  if ! LLMSCHED_BIN="$work/llm-scheduler" LLMSCHED_CONFIG="$work/$backend.yaml" LLMSCHED_URL="http://127.0.0.1:$port" \
      LLMSCHED_LOG="$work/$backend.log" go test -tags security -count=1 ./internal/security/; then
    echo "--- server log ($backend)" >&2
    tail -n 200 "$work/$backend.log" >&2
    exit 1
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

run_suite embedded

ensure_mariadb
ensure_redis
db_name="llmsched_sec_$$"
mysql -h 127.0.0.1 -u root -e "CREATE DATABASE $db_name"
# A Redis database of its own (empty), emptied again at the end.
redis_db=
for n in $(seq 15 -1 1); do
  if [ "$(redis-cli -n "$n" DBSIZE)" = 0 ]; then redis_db=$n; break; fi
done
[ -n "$redis_db" ] || { echo "no empty Redis database" >&2; exit 1; }
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; redis-cli -n "$redis_db" FLUSHDB >/dev/null; mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db_name"; rm -rf "$work"' EXIT
run_suite mysql
