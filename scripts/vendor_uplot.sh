#!/usr/bin/env bash
# The page's chart library, uPlot, is vendored into shared/src/api/page/vendor/ (built into the binary
# with include_str!, so the page needs no CDN). This script re-fetches it from the npm registry at the
# pinned version with npm's own client, checks the tarball against the registry's integrity and the
# files against the sha256 pinned here, and copies them in.
#
#   scripts/vendor_uplot.sh           re-fetch and write the files (needs the npm registry)
#   scripts/vendor_uplot.sh --check   offline: the vendored files have the pinned sha256 (CI runs this)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION="1.6.32"
INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
DEST="shared/src/api/page/vendor"
# file in the package -> file here, and its sha256
FILES=(
  "dist/uPlot.iife.min.js uPlot.iife.min.js 19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
  "dist/uPlot.min.css uPlot.min.css df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
  "LICENSE uPlot.LICENSE 8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"
)

check() {
  local dir="$1" failed=0
  for entry in "${FILES[@]}"; do
    read -r _ here sum <<<"$entry"
    got="$(sha256sum "$dir/$here" | cut -d' ' -f1)"
    if [[ "$got" != "$sum" ]]; then
      echo "FAIL: $dir/$here has sha256 $got, pinned $sum" >&2
      failed=1
    fi
  done
  return $failed
}

if [[ "${1:-}" == "--check" ]]; then
  check "$DEST"
  echo "ok: uPlot $VERSION vendored files match their pinned sha256 (${#FILES[@]} files)"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "uplot@$VERSION" --silent >/dev/null)
tarball="$work/uplot-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$got" != "$INTEGRITY" ]]; then
  echo "FAIL: uplot-$VERSION.tgz has integrity $got, the registry's pinned one is $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
mkdir -p "$work/out"
for entry in "${FILES[@]}"; do
  read -r there here _ <<<"$entry"
  cp "$work/package/$there" "$work/out/$here"
done
check "$work/out"
for entry in "${FILES[@]}"; do
  read -r _ here _ <<<"$entry"
  cp "$work/out/$here" "$DEST/$here"
done
echo "ok: uPlot $VERSION re-fetched from the npm registry into $DEST (integrity and sha256 checked)"
