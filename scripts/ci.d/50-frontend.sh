#!/usr/bin/env bash
# The dashboard (frontend/): unit tests, a reproducible build that must equal
# the committed server/dashboard/dist, and the end-to-end test in Debian's
# headless Chromium against the real binary. Screenshots of every page land
# in artifacts/screenshots/ (gitignored), kept as CI artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node
ensure_chromium

step "frontend: npm ci"
(cd frontend && npm ci --no-audit --no-fund --loglevel=error)

step "frontend: vitest"
(cd frontend && npx vitest run)

step "frontend: build (codegen, tsc, vite) equals the committed server/dashboard/dist"
# The build goes to a scratch folder and is compared with the committed one:
# vite empties its output folder first, and the background steps compile
# binaries that embed server/dashboard/dist meanwhile (a build into it made
# one of them start without index.html).
out=$(mktemp -d /tmp/llmsched-dist-XXXXXX)
(cd frontend && npm run build -- --outDir "$out" --emptyOutDir)
if ! diff -r "$out" server/dashboard/dist >/dev/null; then
  echo "npm run build in frontend/ gives a different build than the committed server/dashboard/dist; run it and commit the result:" >&2
  diff -rq "$out" server/dashboard/dist >&2 || true
  exit 1
fi
rm -rf "$out"
dirty=$(git status --porcelain -- frontend/src/gql)
if [ -n "$dirty" ]; then
  echo "npm run build in frontend/ changed the generated types; run it and commit the result:" >&2
  echo "$dirty" >&2
  git --no-pager diff --stat -- frontend/src/gql >&2
  exit 1
fi

step "frontend: end-to-end in headless Chromium"
bin=$(mktemp -d)/llm-scheduler
go build -o "$bin" .
(cd frontend && LLMSCHED_BIN="$bin" SCREENSHOT_DIR="$PWD/../artifacts/screenshots" E2E_PORT="${E2E_PORT:-18931}" node e2e/run.mjs)
