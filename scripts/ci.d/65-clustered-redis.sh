#!/usr/bin/env bash
# ci: background
# Redis Cluster and Sentinel for real (docs/scaling.md): starts a private
# Redis Cluster (3 masters, 3 replicas) and a Sentinel set (master,
# replica, 3 sentinels) from Debian's redis-server on loopback ports from
# 64700 up (redistest), runs the dispatch, limits, cancel, retry, wake-up,
# event and subscription suites against each, then the failover scenarios
# (internal/chaos/failover_test.go): a master SIGKILLed under 1,000 tasks, 0 lost,
# 0 run twice, max_workers held.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

for bin in redis-server redis-cli mariadbd mariadb-install-db; do
  command -v "$bin" >/dev/null || apt_install redis-server redis-tools mariadb-server
done
ensure_mariadb

dir=$(mktemp -d /tmp/llmsched-clustered-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
go build -o "$dir/redis-topology" ./internal/redistest/cmd/redis-topology

# start_topology KIND: starts it in the background and exports the
# TEST_REDIS_* variable it prints.
start_topology() {
  "$dir/redis-topology" "$1" "$dir/$1" >"$dir/$1.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    if grep -q '^READY$' "$dir/$1.out"; then
      export "$(grep '^TEST_REDIS_' "$dir/$1.out")"
      return 0
    fi
    sleep 0.1
  done
  cat "$dir/$1.out" >&2
  return 1
}

# The suites that touch Redis: dispatch, limits, cancel, retry, wake-ups
# and the reconciler (jobs), the service (scheduler), events and GraphQL
# subscriptions (graph). On the Cluster tests take turns (apptest).
# On the Cluster every suite (most keys and scripts differ there); on
# Sentinel, where the keys are those of one Redis, the scenarios that move
# slots, leases and messages.
start_topology cluster
# Data loss on the Cluster: TestRedisFlushWithTasksRunningKeepsMaxWorkers
# flushes every master, TestRedisClusterShardLoss... only the model's; the
# slot scripts check the model's epoch marker, in its hash slot
# (jobs/slots.go markModel, docs/scaling.md).
# -p 1: a Cluster has only database 0, and a database holds one
# deployment's asynq queues (broker.claimAsynq); tests of two packages at
# once would be two deployments on it. Each test's cleanup frees it.
LLMSCHED_TEST_BACKEND=mysql go test -p 1 -count=1 -timeout 8m ./jobs/ ./internal/scheduler/
LLMSCHED_TEST_BACKEND=mysql go test -count=1 -timeout 8m -run 'Subscri' ./graph/
unset TEST_REDIS_CLUSTER
start_topology sentinel
LLMSCHED_TEST_BACKEND=mysql go test -count=1 -timeout 8m \
  -run 'TestPriorityOrderAndFIFO|TestSaturatedModelDoesNotDelayOthers|TestRetryWithBackoff|TestCancel|TestRedisFlush|TestIdleWorker|TestModelCreatedWhileWorkersAreQuietIsWoken|TestReconciler' ./jobs/
unset TEST_REDIS_SENTINEL

if ! LLMSCHED_TEST_BACKEND=mysql go test -tags clustered -count=1 -timeout 10m \
  -run 'TestSentinelFailover|TestClusterFailover' -v ./internal/chaos >"$dir/failover.log" 2>&1; then
  tail -100 "$dir/failover.log"
  exit 1
fi
grep -E '^(---|ok)|Failover:|  model ' "$dir/failover.log"
