#!/usr/bin/env bash
# Builds every plugin in plugins/: the Rust ones for wasm32-wasip2 (one cargo workspace), then
# the Python and JavaScript ones with `hubwasm plugin build` (componentize-py, componentize-js;
# cached by content in ~/.cache/hubwasm/builds). Prints where the .wasm files are.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml \
  --target-dir "$HUBWASM_PLUGINS_TARGET_DIR"
echo "plugins built in $PLUGINS_OUT:"
ls "$PLUGINS_OUT"/*.wasm

cargo build --quiet -p hubwasm --bin hubwasm
mkdir -p "$LANG_PLUGINS_OUT"
for dir in plugins/python/*/ plugins/js/*/; do
  dir="${dir%/}"
  [ -f "$dir/app.py" ] || [ -f "$dir/app.js" ] || continue   # the guest libraries themselves
  name="$(basename "$dir")"
  lang="$(basename "$(dirname "$dir")")"
  "$CARGO_TARGET_DIR/debug/hubwasm" plugin build "$dir" -o "$LANG_PLUGINS_OUT/${name//-/_}_$lang.wasm"
done
