#!/usr/bin/env bash
# The official openai npm SDK against the OpenAI-compatible front door (/v1)
# of a real llm-scheduler binary (embedded default, auth on): chat plain and
# streamed, embeddings, models.list, every error status as the SDK's own
# error class, the SDK's retries against our 429. The Go SDK (openai-go)
# runs in server/openai_test.go. The Python SDK is not run: PyPI is not
# reachable from the CI machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node
scratch_dir

(cd server/openaitest && npm ci --no-audit --no-fund)
go build -o "$work/llm-scheduler" .

# Keys, made before the server starts (the embedded database is a file
# under the working directory). The key is the indented line of create's
# output.
key() { (cd "$work" && AUTH_ENABLED=true ./llm-scheduler apikey create --name "$1" --role "$2") | awk '/^  lls_/ {print $1}'; }
export LLMSCHED_ADMIN_KEY=$(key ci-admin admin)
export LLMSCHED_SUBMITTER_KEY=$(key ci-submitter submitter)
export LLMSCHED_VIEWER_KEY=$(key ci-viewer viewer)
export LLMSCHED_REVOKED_KEY=$(key ci-revoked submitter)
revoked_id=$(cd "$work" && ./llm-scheduler apikey list | awk '$2 == "ci-revoked" {print $1}')
(cd "$work" && ./llm-scheduler apikey revoke "$revoked_id" >/dev/null)
for k in "$LLMSCHED_ADMIN_KEY" "$LLMSCHED_SUBMITTER_KEY" "$LLMSCHED_VIEWER_KEY" "$LLMSCHED_REVOKED_KEY"; do
  [ -n "$k" ] || { echo "could not create API keys" >&2; exit 1; }
done

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
(cd "$work" && AUTH_ENABLED=true QUEUE_MAX_RETRIES=0 QUEUE_MAX_QUEUE_SIZE=20 SERVER_HOST=127.0.0.1 SERVER_PORT=$port \
  exec ./llm-scheduler serve >"$work/server.log" 2>&1) &
pid=$!
for _ in $(seq 120); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$work/server.log" >&2; echo "server exited" >&2; exit 1; fi
  sleep 0.5
done

if ! (cd server/openaitest && LLMSCHED_URL="http://127.0.0.1:$port" node --test); then
  echo "--- server log" >&2
  cat "$work/server.log" >&2
  exit 1
fi
