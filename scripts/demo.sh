#!/usr/bin/env bash
# The main job, end to end on one machine, no Azure account: build the sample plugin and the
# host, then `hubwasm run` with the embedded default (an in-process Event Hubs endpoint, a local
# checkpoint store, the json-filter plugin), send the seed's sample events through the official
# Rust SDK, process and checkpoint them, print the summary, and exit by itself once caught up.
# Finally `hubwasm status` shows the checkpoints and lag from the store and the endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Only what the demo runs: the wasm32-wasip2 target, the sample plugin and the host (the test
# toolchains, Python, JavaScript and the browser are the test command's).
bash scripts/setup.sh --demo
echo "== building the sample plugin (wasm32-wasip2) and the host (a few minutes the first time)"
# Side by side: the plugin's build fills the cores the host's build leaves idle. The host in
# the `demo` profile: the dev build without debug info (see Cargo.toml).
cargo build --quiet --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml \
  -p json-filter --target-dir "$HUBWASM_PLUGINS_TARGET_DIR" &
plugin_build=$!
cargo build --quiet --profile demo -p hubwasm
wait "$plugin_build"
HUBWASM="$CARGO_TARGET_DIR/demo/hubwasm"
DEMO_DIR="${HUBWASM_DEMO_DIR:-$(mktemp -d -t hubwasm-demo.XXXXXX)}"
EVENTS="$PWD/examples/events/seed-sample.jsonl"
PLUGIN="$PLUGINS_OUT/json_filter.wasm"
echo "== the sample plugin"
"$HUBWASM" plugin inspect "$PLUGIN"
echo
echo "== hubwasm run (embedded endpoint, local checkpoints in $DEMO_DIR/.hubwasm)"
cd "$DEMO_DIR"
"$HUBWASM" run --plugin "$PLUGIN" --plugin-config min_value=50 \
  --send "$EVENTS" --exit-when-idle 1
echo
echo "== hubwasm status"
"$HUBWASM" status
