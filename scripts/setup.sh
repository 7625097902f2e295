#!/usr/bin/env bash
# One-time set-up on a fresh machine of this kind (Debian + rustup): the wasm
# target for plugins. Idempotent; sourced by run.sh and test.sh.
set -euo pipefail
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust with rustup first (https://rustup.rs)" >&2
    exit 1
fi
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown \
        || rustup target add wasm32-unknown-unknown \
        || echo "setup: rustup could not add wasm32-unknown-unknown; stratbox plugin build will try the Debian route" >&2
fi
# Node.js and npm, at build time only: the research reports' ECharts and the
# dashboard's lightweight-charts come from npm packages pinned by lock files.
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q nodejs npm \
        || echo "setup: could not install nodejs and npm; install them to build the host" >&2
fi
