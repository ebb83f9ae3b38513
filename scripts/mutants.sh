#!/usr/bin/env bash
# make mutants: apply each deliberate breakage listed in scripts/mutants.tsv
# to a scratch copy of this tree, one at a time, run the tests named for it,
# and report whether the suite caught it (killed) or let it through
# (survived). Exits 1 if any mutant survived, did not apply or did not
# compile, or if a named test fails on the unbroken tree. Slow (one test
# run per mutant): not part of CI. Mutants on the mysql backend need MariaDB
# and Redis as for LLMSCHED_TEST_BACKEND=mysql (and, for ./chaos, mariadbd
# and redis-server). Usage: scripts/mutants.sh [name ...] (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
list=$PWD/scripts/mutants.tsv

# A mutant is one or more lines with the same name, applied together.
names=()
declare -A backend=() pkg=() run=() edits=()
while IFS= read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  IFS=$'\t' read -r -a f <<<"$line"
  if ((${#f[@]} != 7)); then
    echo "mutants.tsv: want 7 tab-separated fields, got ${#f[@]}: $line" >&2
    exit 2
  fi
  name=${f[0]}
  if (($# > 0)) && ! printf '%s\n' "$@" | grep -qxF -- "$name"; then
    continue
  fi
  if [[ -z ${backend[$name]:-} ]]; then
    names+=("$name")
    backend[$name]=${f[1]} pkg[$name]=${f[2]} run[$name]=${f[3]}
  fi
  edits[$name]+="${f[4]}"$'\t'"${f[5]}"$'\t'"${f[6]}"$'\n'
done <"$list"
if ((${#names[@]} == 0)); then
  echo "no mutants selected" >&2
  exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/llmsched-mutants.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/tree" "$scratch/orig"
git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$scratch/tree"
cd "$scratch/tree"

runtest() { # backend package pattern log
  LLMSCHED_TEST_BACKEND=$1 go test -count=1 -timeout 10m -run "$3" "$2" >"$4" 2>&1
}

# The named tests must pass on the unbroken tree, or "killed" means nothing.
declare -A groups=()
for name in "${names[@]}"; do
  k="${backend[$name]} ${pkg[$name]}"
  groups[$k]="${groups[$k]:+${groups[$k]}|}${run[$name]}"
done
for k in "${!groups[@]}"; do
  read -r b p <<<"$k"
  if ! runtest "$b" "$p" "${groups[$k]}" "$scratch/baseline.log"; then
    echo "BASELINE FAILS  $p ($b): ${groups[$k]}"
    tail -n 30 "$scratch/baseline.log"
    exit 1
  fi
done

# apply name: make each of the mutant's edits (each text must occur exactly
# once), keeping the originals in $scratch/orig.
apply() {
  local file from to
  while IFS=$'\t' read -r file from to; do
    [[ -z $file ]] && continue
    if [[ ! -e $scratch/orig/$file ]]; then
      mkdir -p "$(dirname "$scratch/orig/$file")" && cp "$file" "$scratch/orig/$file"
    fi
    FROM=$from TO=$to perl -0777 -i -pe '
      my $n = () = /\Q$ENV{FROM}\E/g;
      die "$ARGV: the text to replace occurs $n times, want once\n" unless $n == 1;
      s/\Q$ENV{FROM}\E/$ENV{TO}/;' "$file" || return 1
  done <<<"${edits[$1]}"
}

restore() {
  (cd "$scratch/orig" && find . -type f) | while read -r f; do cp "$scratch/orig/$f" "$f"; done
  rm -rf "$scratch/orig" && mkdir "$scratch/orig"
}

printf '%-9s %-26s %-8s %s\n' result mutant seconds test
bad=0
for name in "${names[@]}"; do
  log=$scratch/$name.log
  start=$SECONDS
  if ! apply "$name" 2>"$log"; then
    result=NOAPPLY
  elif runtest "${backend[$name]}" "${pkg[$name]}" "${run[$name]}" "$log"; then
    result=SURVIVED
  elif grep -q -e '\[build failed\]' -e '\[setup failed\]' "$log"; then
    result=NOBUILD
  else
    result=killed
  fi
  restore
  printf '%-9s %-26s %-8s %s %s\n' "$result" "$name" $((SECONDS - start)) "${pkg[$name]}" "${run[$name]}"
  if [[ $result != killed ]]; then
    bad=$((bad + 1))
    tail -n 20 "$log" | sed 's/^/    /'
  fi
done
echo "${#names[@]} mutants: $((${#names[@]} - bad)) killed, $bad not killed"
((bad == 0))
