#!/usr/bin/env bash
# Provider conformance against an OpenAI-compatible server written
# elsewhere: @dwmkerr/mock-llm from the npm registry (pinned in
# internal/providers/conformance/package-lock.json, installed into
# internal/providers/conformance/node_modules, which this step owns and reuses while
# the lock file is unchanged), started on loopback with the rules in
# internal/providers/conformance/mock-llm.yaml. The Go tests behind the build tag
# conformance run every task type, streamed and plain, embeddings and the
# error shapes through the real scheduler against it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node
dir=internal/providers/conformance
stamp="$dir/node_modules/.lock-sha"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "provider conformance: npm ci (@dwmkerr/mock-llm)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

log=$(mktemp)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -f "$log"
}
trap cleanup EXIT

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
step "provider conformance: mock-llm on 127.0.0.1:$port"
(cd "$dir" && HOST=127.0.0.1 PORT=$port exec node node_modules/@dwmkerr/mock-llm/dist/main.js --config mock-llm.yaml >"$log" 2>&1) &
pid=$!
for _ in $(seq 60); do
  if node -e "fetch('http://127.0.0.1:$port/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "mock-llm exited" >&2; exit 1; fi
  sleep 0.5
done

step "provider conformance: go test -tags conformance ./internal/providers/conformance/"
if ! LLMSCHED_MOCK_LLM_URL="http://127.0.0.1:$port" go test -tags conformance -count=1 ./internal/providers/conformance/; then
  echo "--- mock-llm log" >&2
  cat "$log" >&2
  exit 1
fi
