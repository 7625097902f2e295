#!/usr/bin/env bash
# Every test from a fresh clone: set up, then the Python SDK's and the Python
# examples' native tests (pytest), the workspace tests (SDK, host, the sandbox
# guarantee suite with its Python half, and CLI end-to-end tests, which build
# their plugins from source) and the plugins' own native tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# One venv of the pinned Python tools; the Rust tests that build Python
# components find componentize-py in it too.
venv="$PWD/target/test-plugins/python-tools/.venv"
scripts/python-tools.sh "$venv"
for project in sdk/python examples/sma-cross-py examples/breadth-guard-py; do
    (cd "$project" && "$venv/bin/pytest" -q -p no:cacheprovider)
done
cargo test --workspace
(cd plugins && cargo test)
