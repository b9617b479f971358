#!/usr/bin/env bash
# Tests of the OpenTelemetry adapter (otelauth, a nested module, so that an
# application that does not import it never has OpenTelemetry in its module
# graph). They include the proof that the SDK's own packages (clientcreds,
# examples/worker, the whole module) depend on no OpenTelemetry package.
# Runs on its own too:
#   bash .ci/otel.sh
set -euo pipefail
exec bash "$(dirname "$0")/module.sh" otelauth
