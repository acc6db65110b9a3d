#!/usr/bin/env bash
# Make sure the system tools the tests need are present: git and tmux from Debian's
# packages, node/npm for the real agent CLIs, Chromium for the dashboard's browser tests
# (Playwright drives /usr/bin/chromium; no browser download). Installs what is missing
# when it can (root and apt-get), otherwise says what to install and fails.
set -euo pipefail
missing=()
command -v git >/dev/null || missing+=(git)
command -v tmux >/dev/null || missing+=(tmux)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]} with apt-get" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing: ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi
