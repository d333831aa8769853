#!/usr/bin/env bash
# Builds the three Lambda zips with cargo-lambda (pinned, in a venv with zig as the cross linker) and
# prints each zip's size and its unzipped binary's size.
#
#   scripts/build_lambdas.sh --arm64     # Graviton (the default architecture of infra/)
#   scripts/build_lambdas.sh --x86-64    # what CI builds: the arm64 standard library needs network
#
# Output: target/lambda/<function>/bootstrap.zip in the repository (whatever CARGO_TARGET_DIR is), the
# path infra/terraform and infra/sam deploy from.
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${1:---arm64}"
case "$arch" in --arm64 | --x86-64) ;; *) echo "usage: $0 [--arm64|--x86-64]" >&2; exit 2 ;; esac

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kubecur-target}"
venv="${KUBECUR_VENVS:-/var/tmp/kubecur-venvs}/cargo-lambda"
installed=$("$venv/bin/python" -m pip show cargo-lambda 2>/dev/null | sed -n 's/^Version: //p' || true)
if [[ "$installed" != "1.9.2" ]]; then
  echo "installing cargo-lambda==1.9.2 and ziglang==0.13.0.post1 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2' 'ziglang==0.13.0.post1'
fi
export PATH="$venv/bin:$PATH"

functions=(cur-ingest allocation-writer allocation-api)
cargo lambda build --profile lambda "$arch" --output-format zip --lambda-dir target/lambda $(printf -- '-p %s ' "${functions[@]}")
for f in "${functions[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  unzipped=$(python3 -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")
  awk -v f="$f" -v z="$(stat -c %s "$zip")" -v u="$unzipped" \
    'BEGIN { printf "%-18s zip %5.2f MB, unzipped %5.2f MB (target <= 12 MB)\n", f, z / 1e6, u / 1e6 }'
done
