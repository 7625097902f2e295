#!/usr/bin/env bash
# The main job from a fresh clone: set up, build the host and the bundled
# plugins, then run the host on its built-in simulator, paper trading.
# Extra arguments go to `stratbox run` (e.g. --duration 30).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p stratbox
scripts/build-plugins.sh target/release/stratbox
exec target/release/stratbox run "$@"
