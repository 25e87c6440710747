#!/usr/bin/env bash
# Benchmarks of two revisions side by side: builds the benches of BASE_REV (in a temporary
# worktree) and of the working tree, then runs them alternately, base then new, ROUNDS times
# each, so that drift of this shared machine hits both alike. Prints every run's output.
#
#   bash scripts/bench-compare.sh BASE_REV [ROUNDS]      (default 3 rounds)
#
# The end-to-end bench runs without its Python baselines and on HUBWASM_BENCH_EVENTS events
# (default 500 000) to keep a round short.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
base="${1:?usage: bash scripts/bench-compare.sh BASE_REV [ROUNDS]}"
rounds="${2:-3}"
out="$CARGO_TARGET_DIR/bench-compare"
rm -rf "$out"
mkdir -p "$out/base" "$out/new"
wt="$(mktemp -d)/base"
git worktree add --detach "$wt" "$base" >/dev/null
trap 'git worktree remove --force "$wt"' EXIT

# Workspaces at different paths share artifact names in one target directory, so each side is
# built right before its binaries are copied out (touching its sources so cargo rebuilds them).
build() {
  local dir="$1" to="$2"
  (
    cd "$dir"
    find host hub plugins -name '*.rs' -exec touch {} +
    cargo bench --no-run -p hubwasm --bench plugin_overhead --bench end_to_end --message-format=json
    cargo bench --no-run -p hubwasm-hub --bench ingest --bench storage --message-format=json
  ) 2>/dev/null | grep -o '"executable":"[^"]*/deps/[^"]*"' | cut -d'"' -f4 |
    while read -r exe; do
      name="$(basename "$exe")"
      cp "$exe" "$to/${name%-*}"
    done
}
echo "== building $base"
build "$wt" "$out/base"
echo "== building the working tree"
build . "$out/new"   # last, so the plugins on disk are the working tree's

export HUBWASM_BENCH_SKIP_PYTHON=1
export HUBWASM_BENCH_EVENTS="${HUBWASM_BENCH_EVENTS:-500000}"
for bench in plugin_overhead storage ingest end_to_end; do
  case "$bench" in plugin_overhead | end_to_end) crate=host ;; *) crate=hub ;; esac
  for round in $(seq "$rounds"); do
    for side in base new; do
      echo "== $bench, $side ($([ "$side" = base ] && echo "$base" || echo working tree)), round $round"
      (cd "$crate" && "$out/$side/$bench")
    done
  done
done
