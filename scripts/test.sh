#!/usr/bin/env bash
# The test command (README). Runs on a fresh Debian machine with Go: it
# installs and starts MariaDB and Redis when they are absent, then runs
# go vet, the generated-code check, the Go tests on the embedded default
# and, with the race detector, on MySQL + Redis, and every step in
# scripts/ci.d/ (front end, GraphQL clients, fuzzing, ...), in name order.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export GOFLAGS=${GOFLAGS:-}
source scripts/lib.sh

step "services"
ensure_mariadb
ensure_redis
# The background steps below need these too; apt runs here, in the
# foreground, so that no two steps wait on dpkg's lock at once.
for bin in redis-server redis-cli mariadbd mariadb-install-db; do
  command -v "$bin" >/dev/null || apt_install redis-server redis-tools mariadb-server
done

step "go vet"
go vet ./...

step "generated code is up to date"
check_generate

# The race detector runs once, on MySQL + Redis below: the Go code under
# test is the same on both backends, and the detector makes the suite
# several times slower (one fair-share test: 1.8 s without it, 75 s with
# it on a loaded machine), too slow to pay for twice within CI's budget.
step "go test (embedded: SQLite + in-process Redis)"
LLMSCHED_TEST_BACKEND=embedded go test -count=1 -timeout 15m ./...

step "go test -race (MySQL + Redis)"
LLMSCHED_TEST_BACKEND=mysql go test -race -count=1 -timeout 15m $(go list ./... | grep -v /ent)

# The steps in scripts/ci.d/ run in name order. Those marked with a line
# "# ci: background" (long runs that mostly wait on the processes and
# servers they start: failovers, outages, the chaos run) run one after
# another in the background, beside the foreground steps; each writes to
# its own log, printed when the background chain ends. A failure anywhere
# fails the command, after the background chain has finished.
foreground=() background=()
for s in scripts/ci.d/*.sh; do
  [ -e "$s" ] || continue
  if grep -q '^# ci: background' "$s"; then background+=("$s"); else foreground+=("$s"); fi
done
bgdir=$(mktemp -d /tmp/llmsched-ci-bg-XXXXXX)
bgpid=
if [ ${#background[@]} -gt 0 ]; then
  step "background: ${background[*]##*/} (logs follow when they end)"
  (
    for s in "${background[@]}"; do
      name=$(basename "$s")
      if ! { step "$name (background)"; bash "$s"; } >"$bgdir/$name.log" 2>&1; then
        echo "$name" >>"$bgdir/failed"
        exit 1
      fi
      step "$name (background) passed" >>"$bgdir/$name.log"
    done
  ) &
  bgpid=$!
fi
finish_background() {
  [ -n "$bgpid" ] || return 0
  local rc=0
  wait "$bgpid" || rc=$?
  bgpid=
  for s in "${background[@]}"; do
    [ -e "$bgdir/$(basename "$s").log" ] && cat "$bgdir/$(basename "$s").log"
  done
  if [ -e "$bgdir/failed" ] || [ "$rc" -ne 0 ]; then
    echo "background step failed: $(cat "$bgdir/failed" 2>/dev/null || echo "exit $rc")" >&2
    return 1
  fi
}
trap 'finish_background || true; rm -rf "$bgdir"' EXIT
for s in "${foreground[@]}"; do
  step "$(basename "$s")"
  bash "$s"
done
step "waiting for the background steps"
finish_background
step "all tests passed"
