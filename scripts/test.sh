#!/usr/bin/env bash
# Every test from a fresh clone: set up, then the workspace tests (SDK,
# host, the sandbox guarantee suite and CLI end-to-end tests, which build
# their plugins from source) and the plugins' own native tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace
(cd plugins && cargo test)
