#!/usr/bin/env bash
# ci: background
# The chaos run (about two minutes here): 2 api + 3 worker processes on a
# private MariaDB and Redis that the test starts itself (never the shared
# services), 2,000 simulator tasks, a worker SIGKILLed twice, Redis
# restarted empty, MySQL down for 10s. Fails unless every task completed
# exactly once and no model exceeded max_workers. See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

for bin in mariadbd mariadb-install-db redis-server; do
  command -v "$bin" >/dev/null || apt_install mariadb-server redis-server
done
LLMSCHED_TEST_BACKEND=mysql go test -tags chaos -count=1 -timeout 20m -run 'TestChaos$' ./internal/chaos
