#!/usr/bin/env bash
# Cheap hygiene checks (a second or two):
#  - go.mod and go.sum are tidy: `go mod tidy -diff` changes nothing (it
#    only prints; the checkout is left as it is);
#  - no comment in a hand-written Go or TypeScript source cites a document
#    that is not in the repository (SPEC.md, DESIGN.md, STYLE.md, "the
#    design card") or an issue by number ("issue 7"): a comment says the
#    thing itself or points into docs/. Generated files are those marked
#    linguist-generated in .gitattributes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

step "go.mod and go.sum are tidy"
if ! go mod tidy -diff; then
  echo "go mod tidy would change go.mod/go.sum (diff above); run it and commit the result" >&2
  exit 1
fi

step "comments cite only documents in the repository"
# A comment: the text after // or /*, or a line of a block comment (* ...).
cites='(//|/\*|^[[:space:]]*\*).*(SPEC\.md|DESIGN\.md|STYLE\.md|[Dd]esign card|\<[Ii]ssues? #?[0-9]+\>)'
found=$(git ls-files -- '*.go' '*.ts' '*.tsx' |
  git check-attr --stdin linguist-generated |
  awk -F': ' '$3 != "true" { print $1 }' |
  xargs -r grep -nE -- "$cites" || true)
if [ -n "$found" ]; then
  echo "these comments cite documents outside the repository; say the thing itself or point into docs/:" >&2
  echo "$found" >&2
  exit 1
fi
