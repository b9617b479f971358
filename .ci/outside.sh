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
  # As pasted, it is gofmt-clean, and no local variable hides package auth.
  unformatted="$(gofmt -l "$tmp/readme/app_test.go")"
  if [ -n "$unformatted" ]; then echo "README's test is not gofmt'ed:"; gofmt -d "$tmp/readme/app_test.go"; exit 1; fi
  if grep -nE '(^|[^.[:alnum:]_])auth(, [[:alnum:]_]+)? :?= ' "$tmp/readme/app_test.go"; then
    echo "README's test declares a variable named auth, hiding package auth"; exit 1
  fi
fi
# Every Example file of the SDK's packages, and every example program (without its own tests),
# must compile here too: each is what a user copies into their module.
# Nested modules (otelauth, interop) have their own module graph: left out.
(cd "$checkout" && find . -name 'example*_test.go' -not -path './examples/*' -not -path '*/testdata/*' -not -path '*/node_modules/*') |
  while read -r f; do
    nested=0
    dir="$(dirname "$f")"
    while [ "$dir" != "." ]; do
      [ -f "$checkout/$dir/go.mod" ] && nested=1
      dir="$(dirname "$dir")"
    done
    [ "$nested" = 1 ] && continue
    d="$tmp/sdkexamples/$(dirname "${f#./}" | tr / _)"
    mkdir -p "$d" && cp "$checkout/$f" "$d/"
  done
for prog in "$checkout"/examples/*/; do
  [ -f "$prog/go.mod" ] && continue # a module of its own (browsertest)
  d="$tmp/programs/$(basename "$prog")"
  mkdir -p "$d"
  find "$prog" -maxdepth 1 -name '*.go' -not -name '*_test.go' -exec cp {} "$d/" \;
  # What a program embeds (examples/spa's static/) travels with it.
  find "$prog" -mindepth 1 -maxdepth 1 -type d -exec cp -r {} "$d/" \;
done
cd "$tmp"
export GOFLAGS=-mod=mod
go mod tidy
# (Go itself refuses an import of the SDK's internal packages from this module.)
go vet ./...
go build ./programs/...
# The Example functions run here as they do in the SDK (their // Output: is checked). The
# Redis store's need a redis-server: one is started on a free port when it is on PATH.
if command -v redis-server >/dev/null 2>&1; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 16399)"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  export REDIS_ADDR="127.0.0.1:$port"
  go test -race -count=1 ./...
else
  echo "redis-server not on PATH: the redisstore Examples are compiled, not run"
  go test -race -count=1 $(go list ./... | grep -v '/sdkexamples/authcode_redisstore$')
fi
