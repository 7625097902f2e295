#!/usr/bin/env bash
# Reproduces the shipped models (examples/models/*.onnx and their cards, and
# ensemble.json) from ../shared/data with the fixed seed:
#   scripts/train-models.sh [SHARED_DATA_DIR]
# Builds the CLI, imports Lean's SPY daily bars into a scratch data
# directory, writes the dataset with `stratbox ml dataset` (the plugin's own
# feature code), then trains, tunes and exports in a virtual environment
# with host/ml/training/requirements.txt (created on first use: .venv-ml).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data}"
SPY="$DATA/lean/equity_usa_daily/spy.csv"
[ -f "$SPY" ] || { echo "no $SPY: pass the shared data folder" >&2; exit 1; }
VENV="${VENV:-.venv-ml}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r host/ml/training/requirements.txt
fi
cargo build --release -p stratbox
BIN="${CARGO_TARGET_DIR:-target}/release/stratbox"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$BIN" --data-dir "$WORK" --log warn data import "$SPY" --symbol SPY
"$BIN" --data-dir "$WORK" ml dataset --symbols SPY --out "$WORK/spy.csv"
"$VENV/bin/python" host/ml/training/train.py "$WORK/spy.csv" examples/models --trials 10 --epochs 8
