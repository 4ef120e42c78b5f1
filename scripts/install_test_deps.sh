#!/usr/bin/env bash
# What the test suite needs beyond `pip install -e ".[ros,test]"`:
#  - Debian's chromium + chromedriver and the iwer WebXR emulator (dashboard and VR page tests);
#  - Debian's PostgreSQL server (tests/helpers/postgres.py starts a throw-away one for the catalogue tests);
#  - torch, CPU build, for the DataLoader test. `torch==2.13.0` is pinned because a plain `torch`
#    pulls a multi-GB CUDA build; on this project's machines that version installs from a local wheel.
# Usage: bash scripts/install_test_deps.sh [VENV]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
bash scripts/install_test_browser.sh
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
        || { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
fi
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
    "$venv/bin/pip" install -q "torch==2.13.0"
fi
