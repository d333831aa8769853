#!/usr/bin/env bash
# The allocation writer's peak memory on large query results: the deployed code path (result CSV
# streamed from S3, snapshot built row by row, DynamoDB batches) against moto server, one process per
# size. The writer function has 1,024 MB (infra/terraform/modules/kubecur/functions.tf).
#
#   bench/writer_memory.sh [ROWS[:DAYS] ...]   (default: 200000 2000000; DAYS per group, default 30;
#                                               needs moto_server on PATH: scripts/test installs it)
#   NO_BUDGET=1 bench/writer_memory.sh 1000000:1   the worst shape, with the writer's memory budget off
#                                                  (with it, the deployed writer refuses this result)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kubecur-target}"
if (($# == 0)); then
  set -- 200000 2000000
fi
# Built with the whole workspace's features (as the tests are), so the test build's libraries are reused.
cargo build --release --quiet --workspace --examples
for size in "$@"; do
  rows="${size%%:*}"
  days=30
  if [[ "$size" == *:* ]]; then
    days="${size#*:}"
  fi
  "$CARGO_TARGET_DIR/release/examples/writer_memory" "$rows" "$days"
done
