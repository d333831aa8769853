#!/usr/bin/env bash
# The AWS pipeline's budgets: stripped size of each Lambda binary (target <= 12 MB unzipped, no query
# engine linked), writer DynamoDB requests per item (target <= 1.02 x items/25) and API round trips.
#
#   bench/pipeline.sh [ROWS]        (needs moto_server on PATH: scripts/test installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kubecur-target}"
rows="${1:-200000}"

functions=(cur-ingest allocation-writer allocation-api)
cargo build --release --quiet $(printf -- '-p %s ' "${functions[@]}")
echo "== Lambda binaries (x86_64 here; cargo lambda build --release --arm64 for Graviton) =="
for f in "${functions[@]}"; do
  engines=$(cargo tree --quiet -p "$f" -e normal --prefix none | grep -cE '^(datafusion|duckdb|polars|arrow) ' || true)
  tmp=$(mktemp)
  cp "$CARGO_TARGET_DIR/release/$f" "$tmp"
  strip "$tmp"
  bytes=$(stat -c %s "$tmp")
  rm -f "$tmp"
  awk -v f="$f" -v b="$bytes" -v e="$engines" 'BEGIN { printf "%-18s %6.2f MB stripped (target <= 12 MB), query-engine crates linked: %d\n", f, b / 1e6, e }'
done

echo "== DynamoDB requests (moto server) =="
cargo run --release --quiet -p kubecur-tests --example pipeline_bench -- "$rows"
