# Shared helpers for scripts/test.sh and scripts/ci.d/*.sh (source it).
step() { printf '\n==> %s  [%s, %ss in]\n' "$*" "$(date +%T)" "$SECONDS"; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    export APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ensure_mariadb starts MariaDB on 127.0.0.1:3306 (root, no password),
# installing it if needed.
ensure_mariadb() {
  local host=${TEST_MYSQL_HOST:-127.0.0.1} port=${TEST_MYSQL_PORT:-3306}
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
  command -v mariadbd >/dev/null || command -v mysqld >/dev/null || apt_install mariadb-server
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd || command -v mysqld)" -- --user=mysql
  for _ in $(seq 60); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "MariaDB did not start on $host:$port" >&2
  return 1
}

# ensure_redis starts Redis on 127.0.0.1:6379, installing it if needed.
ensure_redis() {
  if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then return 0; fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do
    if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "Redis did not start" >&2
  return 1
}

# ensure_node makes node and npm available.
ensure_node() {
  command -v npm >/dev/null || apt_install nodejs npm
}

# ensure_chromium installs Debian's Chromium for browser tests.
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}

# check_generate fails when go generate changes or adds files under the
# generated paths (run on a clean checkout, as CI does).
check_generate() {
  go generate ./...
  local dirty
  dirty=$(git status --porcelain -- ent graph scripts/init.sql)
  if [ -n "$dirty" ]; then
    echo "go generate ./... changed generated files; run it and commit the result:" >&2
    echo "$dirty" >&2
    return 1
  fi
}

# scratch_dir: a temporary directory in $work, removed on exit together with
# the server process whose id the caller puts in $pid.
scratch_dir() {
  work=$(mktemp -d)
  pid=
  trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
}
