#!/usr/bin/env bash
# Headless Chromium for the HTML report's browser test (tests/integration/test_compare.py).
# Idempotent: does nothing when chromium is already on PATH. Debian's package; needs root.
set -euo pipefail
command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)
chromium --version
