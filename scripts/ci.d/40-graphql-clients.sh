#!/usr/bin/env bash
# GraphQL reference clients: graphql-ws (graphql-transport-ws) and
# subscriptions-transport-ws (legacy graphql-ws) subscribe to taskUpdated on
# a real llm-scheduler binary (embedded default: SQLite + in-process Redis)
# and must see PENDING, RUNNING, COMPLETED, then completion.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
source scripts/lib.sh

ensure_node
scratch_dir

(cd graph/clienttest && npm ci --no-audit --no-fund)
go build -o "$work/llm-scheduler" .

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
(cd "$work" && SERVER_HOST=127.0.0.1 SERVER_PORT=$port exec ./llm-scheduler serve >"$work/server.log" 2>&1) &
pid=$!
for _ in $(seq 120); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$work/server.log" >&2; echo "server exited" >&2; exit 1; fi
  sleep 0.5
done

if ! (cd graph/clienttest && LLMSCHED_URL="http://127.0.0.1:$port" node --test); then
  echo "--- server log" >&2
  cat "$work/server.log" >&2
  exit 1
fi
