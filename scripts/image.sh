#!/usr/bin/env bash
# Build the hubwasm container image with podman, from scratch (no base image is pulled: the
# rootfs is staged here from the release binary, the libraries it links and the CA bundle).
#
#   bash scripts/image.sh            build localhost/hubwasm:<version> (HUBWASM_IMAGE overrides)
#   bash scripts/image.sh --check    build it, then run the binary taken out of the image,
#                                    confined to the image's files (chroot): --version and
#                                    `plugin inspect` on the sample plugin
#
# A container cannot be started on the project's build machines (crun's setrlimit is refused),
# so the check runs the image's own files without a container runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1
if ! command -v podman >/dev/null 2>&1; then
  echo "image: installing podman (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq podman >/dev/null
fi
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
IMAGE="${HUBWASM_IMAGE:-localhost/hubwasm:$VERSION}"

echo "image: building the release binary"
cargo build --release --quiet -p hubwasm
BIN="$CARGO_TARGET_DIR/release/hubwasm"

CTX="$(mktemp -d -t hubwasm-image.XXXXXX)"
trap 'rm -rf "$CTX"' EXIT
ROOT="$CTX/rootfs"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc/ssl/certs" "$ROOT/etc/hubwasm" "$ROOT/tmp" "$ROOT/data"
install -m 0755 "$BIN" "$ROOT/usr/local/bin/hubwasm"
strip --strip-debug "$ROOT/usr/local/bin/hubwasm"
# The shared libraries the binary links (and the loader), at the paths it looks for them.
for lib in $(ldd "$BIN" | awk '/=>/ { print $3 } /^[[:space:]]*\// { print $1 }' | sort -u); do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$ROOT/tmp"
chown 65532:65532 "$ROOT/data" 2>/dev/null || chmod 1777 "$ROOT/data"
cp Containerfile "$CTX/Containerfile"

echo "image: podman build $IMAGE"
# chroot isolation: no RUN step needs it, and it works where cgroups are limited.
podman build --quiet --isolation chroot -t "$IMAGE" -f "$CTX/Containerfile" "$CTX" >/dev/null
SIZE="$(podman image inspect "$IMAGE" --format '{{.Size}}')"
echo "image: built $IMAGE ($((SIZE / 1024 / 1024)) MiB)"
[ "$CHECK" = 1 ] || exit 0

# The image's filesystem, exported from a created (never started) container.
OUT="$CTX/exported"
mkdir -p "$OUT"
CONTAINER="$(podman create "$IMAGE")"
podman export "$CONTAINER" | tar -x -C "$OUT"
podman rm "$CONTAINER" >/dev/null
passed=0
failed=0
check() {
  local what="$1" expect="$2"; shift 2
  local out
  if out="$("$@" 2>&1)" && grep -q -- "$expect" <<<"$out"; then
    passed=$((passed + 1))
    echo "image: ok: $what"
  else
    failed=$((failed + 1))
    echo "image: FAILED: $what"
    echo "$out" | tail -20
  fi
}
cp "$PLUGINS_OUT/json_filter.wasm" "$OUT/data/json_filter.wasm"
CHROOT="$(command -v chroot)"
# chroot: the binary sees only the image's files (its own libraries, no host ones).
check "hubwasm --version" "hubwasm $VERSION" "$CHROOT" "$OUT" /usr/local/bin/hubwasm --version
check "plugin inspect on the sample plugin" "hubwasm:plugin/batch-plugin@" \
  env -i HOME=/data TMPDIR=/tmp "$CHROOT" --userspec=65532:65532 "$OUT" \
  /usr/local/bin/hubwasm plugin inspect /data/json_filter.wasm
echo "image: $passed passed, $failed failed"
[ "$failed" = 0 ]
