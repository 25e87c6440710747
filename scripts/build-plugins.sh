#!/usr/bin/env bash
# Builds every plugin in plugins/ for wasm32-wasip2; prints where the .wasm files are.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml \
  --target-dir "$HUBWASM_PLUGINS_TARGET_DIR"
echo "plugins built in $PLUGINS_OUT:"
ls "$PLUGINS_OUT"/*.wasm
