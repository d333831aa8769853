#!/usr/bin/env bash
# Cold build times (issue 12: the README's first command in ≤ 10 minutes on 2 cores, and a cold CI that
# compiles each heavy crate once). From a fresh clone of HEAD into a temporary directory, it times:
#   A. the README's first command, built into an empty target directory of its own:
#      `cargo build --release -p kubecur --no-default-features` (what `cargo run` compiles first);
#   B. what .ci/run compiles, in order, into another empty target directory: the two clippy runs, the
#      tests (`cargo test --release --workspace --all-targets --no-run`) and, with --lambdas, the Lambda
#      zips (`scripts/build_lambdas.sh --x86-64`, profile `lambda`: size-optimised with LTO by design);
# and counts, from cargo's "Compiling NAME vX" lines in B's release steps, every crate compiled more than
# once (a feature set that differs between two steps), then what the Lambda step compiles again.
#
# Usage: bash bench/cold_build.sh [--lambdas] [WORKDIR]   (default: a new directory under /var/tmp;
# ~6 GB of disk). Needs the Rust toolchain and the crates (the registry cache is reused); --lambdas also
# needs cargo-lambda (scripts/build_lambdas.sh installs its pinned version with pip).
# Run it on an idle machine: it is a benchmark.
set -euo pipefail
lambdas=false
if [[ "${1:-}" == "--lambdas" ]]; then lambdas=true; shift; fi
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=${1:-$(mktemp -d /var/tmp/kubecur-cold-XXXXXX)}
echo "clone of $(git -C "$repo" rev-parse --short HEAD) into $work/src; empty target dirs $work/target-readme, $work/target-ci"
git clone --quiet --no-hardlinks "$repo" "$work/src"
cd "$work/src"
cargo fetch --quiet
log="$work/compile-ci.log"
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
    printf '%-66s %5d s  %4d crates compiled or checked\n' "$name" $((SECONDS - started)) \
        "$(grep -cE '^\s+(Compiling|Checking)' "$work/step.log" || true)"
}

CARGO_TARGET_DIR="$work/target-readme" step "A. cargo build --release -p kubecur --no-default-features (README)" \
    cargo build --release -p kubecur --no-default-features

export CARGO_TARGET_DIR="$work/target-ci"
ci_started=$SECONDS
step "B1. cargo clippy --release --workspace --all-targets" cargo clippy --release --workspace --all-targets
cat "$work/step.log" >> "$log"
step "B2. cargo clippy --release -p kubecur --no-default-features --all-targets" \
    cargo clippy --release -p kubecur --no-default-features --all-targets
cat "$work/step.log" >> "$log"
step "B3. cargo test --release --workspace --all-targets --no-run" cargo test --release --workspace --all-targets --no-run
cat "$work/step.log" >> "$log"
if $lambdas; then
    step "B4. scripts/build_lambdas.sh --x86-64 (profile lambda)" bash scripts/build_lambdas.sh --x86-64
    lambda_log="$work/step-lambda.log"
    cp "$work/step.log" "$lambda_log"
fi
printf '%-66s %5d s\n' "B. all of .ci/run's compiling" $((SECONDS - ci_started))
echo
echo "crates compiled (code generated, not only checked) more than once in B1-B3 (name: times):"
grep -E '^\s+Compiling' "$log" | awk '{print $2}' | sort | uniq -c | awk '$1 > 1 {printf "  %s: %d\n", $2, $1}' | sort
echo "(clippy checks dependencies without generating code, but compiles build scripts: a crate with one shows"
echo " a Compiling line in B1 for it and another in B3 for its library)"
echo "crates with more than one library build in B's release directory (two versions, a host copy for build"
echo "scripts and proc macros, or two feature sets), rlibs per crate name:"
ls "$CARGO_TARGET_DIR"/release/deps/*.rlib | sed -E 's|.*/lib(.*)-[0-9a-f]{16}\.rlib|\1|' | sort | uniq -c | awk '$1 > 1 {printf "  %s: %d\n", $2, $1}'
if $lambdas; then
    echo "compiled again by B4 in the lambda profile: $(grep -cE '^\s+Compiling' "$lambda_log" || true) crates, the largest:"
    grep -E '^\s+Compiling (aws-sdk|parquet|aws-lc|ring|hyper|tokio |reqwest)' "$lambda_log" | awk '{print "  " $2}' | sort -u
fi
