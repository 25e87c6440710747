# Shared settings for the scripts; sourced, not run.
# One cargo target directory outside the clone, so the demo, the tests and CI reuse each other's
# builds (and the plugins' wasm build lives beside it, see plugins/artifacts/build.rs).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hubwasm/target}"
export HUBWASM_PLUGINS_TARGET_DIR="${HUBWASM_PLUGINS_TARGET_DIR:-$CARGO_TARGET_DIR/wasm-plugins}"
PLUGINS_OUT="$HUBWASM_PLUGINS_TARGET_DIR/wasm32-wasip2/release"
# The Python and JavaScript plugins of plugins/python and plugins/js (scripts/build-plugins.sh).
LANG_PLUGINS_OUT="$HUBWASM_PLUGINS_TARGET_DIR/lang"
# The venv with the official Python SDKs (scripts/setup.sh), used by the endpoint's tests.
export HUBWASM_VENV="${HUBWASM_VENV:-$HOME/.cache/hubwasm/venv}"
export HUBWASM_PYTHON="${HUBWASM_PYTHON:-$HUBWASM_VENV/bin/python}"
# Azurite (the Azure Storage emulator, scripts/setup.sh installs it with npm), for the Blob
# checkpoint store's tests: tests/kit/src/azurite.rs starts `azurite-blob` from here.
export HUBWASM_NODE_DIR="${HUBWASM_NODE_DIR:-$HOME/.cache/hubwasm/node}"
export HUBWASM_AZURITE="${HUBWASM_AZURITE:-$HUBWASM_NODE_DIR/node_modules/.bin/azurite-blob}"
# The Python and JavaScript plugin toolchains (scripts/setup.sh): componentize-py sits in the
# venv; componentize-js in a node directory of its own.
export HUBWASM_PLUGIN_NODE_DIR="${HUBWASM_PLUGIN_NODE_DIR:-$HOME/.cache/hubwasm/node-plugins}"
# The type checkers of the editor-types tests (scripts/setup.sh): mypy in the venv, tsc here.
export HUBWASM_TOOLS_NODE_DIR="${HUBWASM_TOOLS_NODE_DIR:-$HOME/.cache/hubwasm/node-tools}"
