#!/usr/bin/env bash
# The whole test suite (what CI runs): formatting, lints, host and plugin tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh

echo "== plugins (wasm32-wasip2)"
bash scripts/build-plugins.sh

echo "== rustfmt"
cargo fmt --all --check
cargo fmt --manifest-path plugins/Cargo.toml --all --check

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path plugins/Cargo.toml --target wasm32-wasip2 \
  --target-dir "$HUBWASM_PLUGINS_TARGET_DIR" -- -D warnings

echo "== tests"
cargo test --workspace
# The guest-side wrapper's own unit tests run natively.
cargo test --manifest-path plugins/Cargo.toml -p hubwasm-guest \
  --target-dir "$CARGO_TARGET_DIR/guest-native"

echo "== container image (podman, from scratch; the binary run from the image's own files)"
bash scripts/image.sh --check
