#!/usr/bin/env bash
# The Python plugin tools pinned in sdk/python/requirements.txt (componentize-py,
# pytest), in a virtual environment at $1; idempotent. `stratbox plugin build`
# sets up the same pin in a project's own .venv by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$1"
want=$(sed -n 's/^componentize-py==//p' sdk/python/requirements.txt)
have=$("$venv/bin/componentize-py" --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ] || [ ! -x "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r sdk/python/requirements.txt
fi
