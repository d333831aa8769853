#!/usr/bin/env bash
# The AWS pipeline's budgets: size of each Lambda binary as deployed (target <= 12 MB unzipped, no query
# engine linked), writer DynamoDB requests per item (target <= 1.02 x items/25) and API round trips.
#
#   bench/pipeline.sh [ROWS]        (needs moto_server on PATH: scripts/test installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kubecur-target}"
rows="${1:-200000}"

echo "== Lambda binaries (profile lambda, x86_64 here; --arm64 for Graviton) =="
for f in cur-ingest allocation-writer allocation-api; do
  engines=$(cargo tree --quiet -p "$f" -e normal --prefix none | grep -cE '^(datafusion|duckdb|polars|arrow)[a-z-]* ' || true)
  echo "$f: query-engine crates linked: $engines"
done
scripts/build_lambdas.sh --x86-64

echo "== DynamoDB requests (moto server) =="
# Built with the whole workspace's features (as the tests are), so the test build is reused.
cargo build --release --quiet --workspace --examples
"$CARGO_TARGET_DIR/release/examples/pipeline_bench" "$rows"
