#!/usr/bin/env bash
# The reliability suite's long form: the kill soak with 20 kills (HUBWASM_SOAK_KILLS to change),
# then the outage and hostile-client scenarios; the figures are appended to
# $HUBWASM_RELIABILITY_REPORT (default target/reliability.txt) and printed at the end.
# CI runs the short form (5 kills) as part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
bash scripts/build-plugins.sh
export HUBWASM_SOAK_KILLS="${HUBWASM_SOAK_KILLS:-20}"
export HUBWASM_RELIABILITY_REPORT="${HUBWASM_RELIABILITY_REPORT:-$CARGO_TARGET_DIR/reliability.txt}"
: > "$HUBWASM_RELIABILITY_REPORT"
echo "== reliability suite, long form: $HUBWASM_SOAK_KILLS kills (report: $HUBWASM_RELIABILITY_REPORT)"
cargo test -p hubwasm --test reliability -- --test-threads 1 --nocapture
echo "== figures"
cat "$HUBWASM_RELIABILITY_REPORT"
