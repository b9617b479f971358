#!/usr/bin/env bash
# Checks and tests one nested module (a directory with its own go.mod, so
# that its dependencies stay out of the SDK's module graph): module
# verification, gofmt, go vet, staticcheck, and the tests with the race
# detector. Usage: bash .ci/module.sh DIR   (DIR relative to the checkout)
set -euo pipefail
cd "$(dirname "$0")/../$1"
go mod download
go mod verify
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "not gofmt'ed:"; echo "$unformatted"; exit 1; fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -race -count=1 -timeout 5m ./...
