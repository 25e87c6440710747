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
