#!/usr/bin/env bash
# Install the real agent CLIs (claude, codex, gemini) into a cache outside the repository,
# for the tests in tests/realcli. Idempotent: does nothing when the launchers are present.
# Prints the launchers' directory (use it as FLOTILLA_CLI_BIN).
#   FLOTILLA_CLI_CACHE  install prefix (default: $HOME/.cache/flotilla/npm)
set -euo pipefail

cache="${FLOTILLA_CLI_CACHE:-$HOME/.cache/flotilla/npm}"
bin="$cache/node_modules/.bin"
packages=(@anthropic-ai/claude-code @openai/codex @google/gemini-cli)
launchers=(claude codex gemini)

missing=0
for name in "${launchers[@]}"; do
    [[ -x "$bin/$name" ]] || missing=1
done

if [[ "$missing" == 1 ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-agent-clis: npm not found; install Node.js >= 20 first" >&2
        exit 1
    fi
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "${packages[@]}" >&2
    for name in "${launchers[@]}"; do
        if [[ ! -x "$bin/$name" ]]; then
            echo "install-agent-clis: $bin/$name missing after npm install" >&2
            exit 1
        fi
    done
fi

echo "$bin"
