#!/usr/bin/env bash
# Development: the Go server on :8080 (embedded SQLite + in-process Redis,
# auth off, text logs) and the Vite dev server on :3000 with hot reload,
# proxying /graphql, /api, /monitoring and /metrics to the Go server.
# Ctrl-C stops both.
#   scripts/dev.sh
#   API_ONLY=1 scripts/dev.sh   # without the front end
set -euo pipefail
cd "$(dirname "$0")/.."

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

CORS_ORIGINS=${CORS_ORIGINS:-http://localhost:3000} go run . serve &
pids+=($!)

if [ -z "${API_ONLY:-}" ]; then
  if [ ! -d frontend/node_modules ]; then
    (cd frontend && npm install)
  fi
  (cd frontend && VITE_API_URL=${VITE_API_URL:-http://localhost:8080} npm run dev) &
  pids+=($!)
  echo "dashboard (dev server): http://localhost:3000   API: http://localhost:8080"
fi
wait -n
