#!/usr/bin/env bash
# Interoperability tests against independent identity servers that live in
# the nested module interop/ (so that their dependencies, zitadel/oidc's
# example OP among them, stay out of the SDK's module graph). Everything
# builds from the Go module proxy; the OP runs in-process on 127.0.0.1.
# Called from .ci/run; runs on its own too:
#   bash .ci/interop.sh
set -euo pipefail
exec bash "$(dirname "$0")/module.sh" interop
