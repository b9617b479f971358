#!/usr/bin/env bash
# Real-browser tests of the examples (examples/browsertest, a nested module
# so that the browser driver stays out of the SDK's module graph): installs
# Debian's chromium when it is missing, then vets and runs the tests. They
# drive headless Chromium against the examples on 127.0.0.1; nothing is
# downloaded at run time. Called from .ci/run; runs on its own too:
#   bash .ci/browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}" # the tests fail, rather than skip, without a browser

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
chromium --version 2>/dev/null || true

bash .ci/module.sh examples/browsertest
