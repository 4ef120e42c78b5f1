#!/usr/bin/env bash
# Install what the VR page tests drive (tests/test_vr_browser.py, tests/test_vr_webxr.py):
#  - Debian's chromium and its matching chromedriver (apt-get; Selenium is pointed at
#    /usr/bin/chromedriver, so nothing is downloaded at test time);
#  - the Immersive Web Emulation Runtime (npm package iwer, MIT), which emulates a Quest 3's
#    WebXR runtime inside the page so the immersive path of the page can be tested headless.
#    Its browser bundle is unpacked to ${COLLECTOR_TEST_CACHE:-~/.cache/collector}/iwer/iwer.min.js.
# Needs root (or sudo) for apt-get and npm on PATH; each part is skipped when already installed.
set -euo pipefail

IWER_VERSION=2.5.0
CACHE="${COLLECTOR_TEST_CACHE:-$HOME/.cache/collector}"

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium and chromedriver already installed"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "install_test_browser.sh: needs root (or sudo) for apt-get" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
    chromium --version
    chromedriver --version
fi

if [ -s "$CACHE/iwer/iwer.min.js" ] && grep -q "$IWER_VERSION" "$CACHE/iwer/VERSION" 2>/dev/null; then
    echo "iwer $IWER_VERSION already in $CACHE/iwer"
else
    command -v npm >/dev/null 2>&1 || { echo "install_test_browser.sh: npm is needed to fetch iwer" >&2; exit 1; }
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "iwer@$IWER_VERSION" >/dev/null && tar xzf "iwer-$IWER_VERSION.tgz")
    mkdir -p "$CACHE/iwer"
    cp "$work/package/build/iwer.min.js" "$work/package/LICENSE" "$CACHE/iwer/"
    echo "$IWER_VERSION" > "$CACHE/iwer/VERSION"
    echo "iwer $IWER_VERSION installed in $CACHE/iwer"
fi
