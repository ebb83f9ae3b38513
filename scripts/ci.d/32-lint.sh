#!/usr/bin/env bash
# Static analysis: golangci-lint with the repository's .golangci.yml
# (errcheck, staticcheck, govet, revive, gocritic and the others it lists,
# over every build tag). Any finding fails the step.
#
# The pinned version is built from its Go module into
# ${XDG_CACHE_HOME:-$HOME/.cache}/llmsched/bin the first time (about a
# minute) and reused while it is the pinned version.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

version=2.15.0
bin=${XDG_CACHE_HOME:-$HOME/.cache}/llmsched/bin
lint=$bin/golangci-lint
if ! "$lint" version 2>/dev/null | grep -q "version $version "; then
  step "golangci-lint $version: go install into $bin"
  mkdir -p "$bin"
  GOBIN=$bin GOFLAGS= go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$version"
fi

step "golangci-lint run"
# Another golangci-lint on this machine (a developer's run) holds a lock;
# wait for it rather than fail.
"$lint" run --allow-serial-runners ./...
