#!/usr/bin/env bash
# Runs erpnettest/testdata/outside/outside_test.go.txt in a module outside this repository
# (example.com/outside, with a replace directive pointing at this checkout), to prove that an
# application can test against erpnettest using the SDK's public packages only.
# Usage: .ci/outside.sh            (from anywhere; needs go and the Go module proxy)
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
goline="$(awk '$1 == "go" { print $2; exit }' "$checkout/go.mod")"
cat >"$tmp/go.mod" <<MOD
module example.com/outside

go ${goline}

require github.com/erpnetgo/auth v0.0.0

replace github.com/erpnetgo/auth => ${checkout}
MOD
cp "$checkout/erpnettest/testdata/outside/outside_test.go.txt" "$tmp/outside_test.go"
# The README's "Testing your app" test must compile and pass as pasted: its first go block
# becomes a package of its own.
readme="$checkout/README.md"
if [ -f "$readme" ]; then
  mkdir "$tmp/readme"
  awk '/^## Testing your app/ { sec = 1 } sec && /^```go$/ { if (!done) { on = 1; next } } /^```$/ { if (on) { on = 0; done = 1 } } on' "$readme" >"$tmp/readme/app_test.go"
fi
cd "$tmp"
export GOFLAGS=-mod=mod
go mod tidy
# (Go itself refuses an import of the SDK's internal packages from this module.)
go vet ./...
go test -race -count=1 ./...
