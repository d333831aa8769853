#!/usr/bin/env bash
# Cold build times (issue 12: the README's first command in ≤ 10 minutes on 2 cores, and a cold CI that
# compiles each heavy crate once). From a fresh clone of HEAD into a temporary directory with an empty
# target directory, it times, in order:
#   1. the build of the README's first command: `cargo build --release -p kubecur`;
#   2. what .ci/run compiles next, in the same target directory: `cargo clippy --release --workspace
#      --all-targets` and `cargo test --release --workspace --all-targets --no-run`;
# and counts, from cargo's "Compiling NAME vX" lines, how many times each crate was compiled in all,
# listing every crate compiled more than once (a feature set that differs between the steps).
#
# Usage: bash bench/cold_build.sh [WORKDIR]   (default: a new directory under /var/tmp; ~3 GB of disk)
# Needs only the Rust toolchain and the crates (cargo fetches them; the registry cache is reused).
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=${1:-$(mktemp -d /var/tmp/kubecur-cold-XXXXXX)}
echo "clone of $(git -C "$repo" rev-parse --short HEAD) into $work/src; empty target dir $work/target"
git clone --quiet --no-hardlinks "$repo" "$work/src"
export CARGO_TARGET_DIR="$work/target"
cd "$work/src"
log="$work/compile.log"
: > "$log"
step() {
    local name=$1
    shift
    local started=$SECONDS
    if ! "$@" > "$work/step.log" 2>&1; then
        tail -30 "$work/step.log"
        echo "$name: failed" >&2
        exit 1
    fi
    cat "$work/step.log" >> "$log"
    printf '%-58s %5d s  %4d crates compiled or checked\n' "$name" $((SECONDS - started)) \
        "$(grep -cE '^\s+(Compiling|Checking)' "$work/step.log" || true)"
}
cargo fetch --quiet
step "1. cargo build --release -p kubecur (README, first command)" cargo build --release -p kubecur
step "2. cargo clippy --release --workspace --all-targets" cargo clippy --release --workspace --all-targets
step "3. cargo test --release --workspace --all-targets --no-run" cargo test --release --workspace --all-targets --no-run
echo
echo "crates compiled (code generated, not only checked) more than once (name: times):"
grep -E '^\s+Compiling' "$log" | awk '{print $2}' | sort | uniq -c | awk '$1 > 1 {printf "  %s: %d\n", $2, $1}' | sort
echo "(clippy checks dependencies without generating code: \"Checking\" lines, counted in step 2 only)"
