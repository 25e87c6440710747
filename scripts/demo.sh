#!/usr/bin/env bash
# The main job, end to end on one machine: build the sample plugin and the host, then replay the
# seed's sample events through the plugin, printing each verdict and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/build-plugins.sh >/dev/null
echo "== hubwasm plugin inspect"
cargo run --quiet -p hubwasm -- plugin inspect "$PLUGINS_OUT/json_filter.wasm"
echo
echo "== hubwasm plugin test (the seed's events, batches of 8, keep value >= 50)"
cargo run --quiet -p hubwasm -- plugin test "$PLUGINS_OUT/json_filter.wasm" \
  --events examples/events --batch 8 --config min_value=50
