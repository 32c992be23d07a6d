#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium (/usr/bin/chromium) for the report's render test
# (driver/tests/report_chromium.rs). Idempotent: does nothing when it is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-chromium: /usr/bin/chromium is missing and apt-get is not available; install Chromium by hand, or set REHEARSAL_SKIP_CHROMIUM=1 to skip the render test" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "install-chromium: installing Debian's chromium" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version >&2
