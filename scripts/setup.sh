#!/usr/bin/env bash
# Installs what building and testing hubwasm needs beyond the Rust toolchain. Idempotent.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: installing the wasm32-wasip2 Rust target"
  rustup target add wasm32-wasip2
fi
for component in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$component"; then
    echo "setup: installing $component"
    rustup component add "$component"
  fi
done

# The official Python SDK, in a venv beside the cargo target directory, for the endpoint's tests.
VENV="${HUBWASM_VENV:-$HOME/.cache/hubwasm/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating the Python venv $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import azure.eventhub, azure.eventhub.extensions.checkpointstoreblob, azure.storage.blob" 2>/dev/null; then
  echo "setup: installing the official Event Hubs and Blob Storage Python SDKs"
  "$VENV/bin/pip" install --quiet -r "$(dirname "$0")/../tests/python/requirements.txt"
fi

# Azurite (the Azure Storage emulator, from npm) for the Blob checkpoint store's tests and the
# end-to-end benchmark's Python baseline.
NODE_DIR="${HUBWASM_NODE_DIR:-$HOME/.cache/hubwasm/node}"
if [ ! -x "$NODE_DIR/node_modules/.bin/azurite-blob" ]; then
  echo "setup: installing Azurite 3.37 into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent azurite@3.37 >/dev/null)
fi
