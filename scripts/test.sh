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

for s in scripts/ci.d/*.sh; do
  [ -e "$s" ] || continue
  step "$(basename "$s")"
  bash "$s"
done
step "all tests passed"
