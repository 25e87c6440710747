#!/usr/bin/env bash
# Installs what building and testing hubwasm needs beyond the Rust toolchain. Idempotent.
# `--demo`: only what the demo needs (the wasm32-wasip2 target).
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: installing the wasm32-wasip2 Rust target"
  rustup target add wasm32-wasip2
fi
# The demo (scripts/demo.sh) needs only the target above: the test toolchains are not its.
if [ "${1:-}" = "--demo" ]; then
  exit 0
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
  echo "setup: installing the official Event Hubs and Blob checkpoint store Python SDKs"
  "$VENV/bin/pip" install --quiet -r "$(dirname "$0")/../tests/python/requirements.txt"
fi

# Azurite, the Azure Storage emulator, for the Blob checkpoint store's tests (npm, in a cache
# directory beside the venv; scripts/env.sh points HUBWASM_AZURITE at its azurite-blob).
AZURITE_VERSION=3.37
NODE_DIR="${HUBWASM_NODE_DIR:-$HOME/.cache/hubwasm/node}"
installed="$(node -p "require(process.argv[1]).version" "$NODE_DIR/node_modules/azurite/package.json" 2>/dev/null || true)"
case "$installed" in
  "$AZURITE_VERSION".*) ;;
  *)
    if ! command -v npm >/dev/null; then
      echo "setup: npm is missing: install Node.js (18 or newer) to run the Azurite-based tests" >&2
      exit 1
    fi
    echo "setup: installing Azurite $AZURITE_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
    ;;
esac

# The plugin toolchains for Python and JavaScript plugins (`hubwasm plugin build` finds them
# here): componentize-py in the venv, componentize-js in a node directory of its own (its
# dependency tree does not mix with Azurite's).
COMPONENTIZE_PY_VERSION=0.25.1
if [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
  echo "setup: installing componentize-py $COMPONENTIZE_PY_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
COMPONENTIZE_JS_VERSION=0.23
PLUGIN_NODE_DIR="${HUBWASM_PLUGIN_NODE_DIR:-$HOME/.cache/hubwasm/node-plugins}"
installed="$(node -p "require(process.argv[1]).version" "$PLUGIN_NODE_DIR/node_modules/@bytecodealliance/componentize-js/package.json" 2>/dev/null || true)"
case "$installed" in
  "$COMPONENTIZE_JS_VERSION".*) ;;
  *)
    echo "setup: installing componentize-js $COMPONENTIZE_JS_VERSION into $PLUGIN_NODE_DIR"
    mkdir -p "$PLUGIN_NODE_DIR"
    npm install --prefix "$PLUGIN_NODE_DIR" --no-audit --no-fund --loglevel=error \
      "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" >/dev/null
    ;;
esac
# The type checkers the tests run over the scaffolds' editor types (`hubwasm plugin types`):
# mypy in the venv, TypeScript in a node directory of its own (installing it beside
# componentize-js rearranges that tree, and componentize-js imports a package it only gets by
# hoisting).
MYPY_VERSION=2.4.1
if [ "$("$VENV/bin/mypy" --version 2>/dev/null | cut -d' ' -f2)" != "$MYPY_VERSION" ]; then
  echo "setup: installing mypy $MYPY_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "mypy==$MYPY_VERSION"
fi
TYPESCRIPT_VERSION=5.9.3
TOOLS_NODE_DIR="${HUBWASM_TOOLS_NODE_DIR:-$HOME/.cache/hubwasm/node-tools}"
if [ "$("$TOOLS_NODE_DIR/node_modules/.bin/tsc" --version 2>/dev/null)" != "Version $TYPESCRIPT_VERSION" ]; then
  echo "setup: installing TypeScript $TYPESCRIPT_VERSION into $TOOLS_NODE_DIR"
  mkdir -p "$TOOLS_NODE_DIR"
  npm install --prefix "$TOOLS_NODE_DIR" --no-audit --no-fund --loglevel=error \
    "typescript@$TYPESCRIPT_VERSION" >/dev/null
fi
# The status page's browser test: Debian's Chromium, driven by playwright-core (beside tsc).
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# The Redis store's tests: Debian's redis-server (the tests start it on a free port).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# The registry tests: Debian's docker-registry (the CNCF distribution server) and htpasswd
# (apache2-utils) for its bcrypt basic auth; the tests start it on a free port.
if ! command -v docker-registry >/dev/null 2>&1 || ! command -v htpasswd >/dev/null 2>&1; then
  echo "setup: installing docker-registry and apache2-utils (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-registry apache2-utils >/dev/null
fi
PLAYWRIGHT_VERSION=1.65.1
installed="$(node -p "require(process.argv[1]).version" "$TOOLS_NODE_DIR/node_modules/playwright-core/package.json" 2>/dev/null || true)"
if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
  echo "setup: installing playwright-core $PLAYWRIGHT_VERSION into $TOOLS_NODE_DIR"
  npm install --prefix "$TOOLS_NODE_DIR" --no-audit --no-fund --loglevel=error \
    "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi
