#!/usr/bin/env bash
# Tests of the OpenTelemetry adapter (otelauth, a nested module, so that an
# application that does not import it never has OpenTelemetry in its module
# graph): gofmt, vet, staticcheck, and the tests with the race detector. They include the
# proof that the SDK's own packages (clientcreds, examples/worker, the whole
# module) depend on no OpenTelemetry package. Runs on its own too:
#   bash .ci/otel.sh
set -euo pipefail
cd "$(dirname "$0")/../otelauth"
go mod download
go mod verify
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "not gofmt'ed:"; echo "$unformatted"; exit 1; fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -race -count=1 ./...
