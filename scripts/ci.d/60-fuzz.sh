#!/usr/bin/env bash
# Fuzz targets, each for a bounded number of executions (FUZZTIME,
# default 20000x: about 10 s each here). The seed corpora (f.Add and
# testdata/fuzz/) already run in every go test; this step searches further.
# The budget is a count, not a duration: with a duration Go's fuzzing
# coordinator can fail a clean run with a bare "context deadline exceeded"
# when its deadline closes the parent context before the workers' child
# context (golang/go#75804); a count has no deadline to race. FUZZTIME=30s
# still works for a longer local search. A failure leaves its input under the package's
# testdata/fuzz/<Target>/: commit it with the fix, it becomes a regression
# seed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

fuzztime=${FUZZTIME:-20000x}
targets=(
  "./server FuzzDecodeBodies"
  "./internal/config FuzzLoad"
  "./internal/providers FuzzCustomTemplate"
)
for t in "${targets[@]}"; do
  set -- $t
  echo "fuzz $2 in $1, $fuzztime"
  go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -parallel 2 "$1"
done
