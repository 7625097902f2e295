#!/usr/bin/env bash
# Builds the bundled plugins into components in target/plugins/, with the
# `stratbox` binary given as $1 (default: target/release/stratbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/stratbox}
mkdir -p target/plugins
for crate in examples/sma-cross plugins/zscore-guard plugins/stops plugins/vol-regime plugins/jump-guard plugins/breadth-guard plugins/spread-guard plugins/ml-ensemble; do
    name=$(basename "$crate" | tr - _)
    "$bin" plugin build "$crate" -o "target/plugins/$name.wasm"
done
