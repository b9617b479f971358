#!/usr/bin/env bash
# Interoperability tests against independent identity servers that live in
# the nested module interop/ (so that their dependencies, zitadel/oidc's
# example OP among them, stay out of the SDK's module graph). Everything
# builds from the Go module proxy; the OP runs in-process on 127.0.0.1.
# Called from .ci/run; runs on its own too:
#   bash .ci/interop.sh
set -euo pipefail
cd "$(dirname "$0")/../interop"
go mod download
go mod verify
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "not gofmt'ed:"; echo "$unformatted"; exit 1; fi
go vet ./...
go test -race -count=1 -timeout 5m ./...
