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
