#!/usr/bin/env bash
# Fuzz targets, each for a bounded time (FUZZTIME, default 10s). The seed
# corpora (f.Add and testdata/fuzz/) already run in every go test; this
# step searches further. A failure leaves its input under the package's
# testdata/fuzz/<Target>/: commit it with the fix, it becomes a regression
# seed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

fuzztime=${FUZZTIME:-10s}
targets=(
  "./server FuzzDecodeBodies"
  "./internal/config FuzzLoad"
  "./internal/providers FuzzCustomTemplate"
)
for t in "${targets[@]}"; do
  set -- $t
  echo "fuzz $2 in $1 for $fuzztime"
  go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -parallel 2 "$1"
done
