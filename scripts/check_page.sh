#!/usr/bin/env bash
# The Cost Allocation page in a real browser (issue 13), run from .ci/run after the API contract check:
#   1. Debian's chromium, pinned (installed with apt-get when missing or at another version);
#   2. Playwright for Python and botocore, pinned, in a venv under /var/tmp/kubecur-venvs (Playwright
#      drives the system chromium through executable_path: `playwright install` is never run; botocore
#      recomputes the SigV4 signatures the `kubecur serve --api` proxy sends);
#   3. scripts/check_page.py against the release kubecur binary the tests built; it prints its counts
#      and fails on the first mismatch.
#
#   scripts/check_page.sh [--screenshots docs/page]      (extra arguments go to check_page.py)
set -euo pipefail

CHROMIUM_VERSION="156.0.8078.129-1~deb12u1"
PLAYWRIGHT_VERSION="1.65.2"
BOTOCORE_VERSION="1.44.8"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kubecur-target}"
KUBECUR="$CARGO_TARGET_DIR/release/kubecur"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
VENV="$VENV_ROOT/playwright"

if [[ ! -x "$KUBECUR" ]]; then
  echo "FAIL: $KUBECUR is missing; build it first: cargo test --release --workspace --all-targets --no-run" >&2
  exit 1
fi

# Debian ships chromium through bookworm-security, which keeps only the newest build: a pinned version
# disappears from the archive when the next security release lands (CI failed that way once: "Version
# '148.0.7778.167-1~deb12u1' for 'chromium' was not found"). So the pin is installed while Debian offers
# it; once it does not, the chromium already installed or else the one Debian offers now is used, if it
# is at least CHROMIUM_MIN_MAJOR. The version is printed below, so a red run names what it ran on.
CHROMIUM_MIN_MAJOR=147
# The version of an installed chromium only: a removed package keeps its version in dpkg's database
# (status "rc"), so the status is checked too.
chromium_installed() { dpkg-query -W -f '${db:Status-Abbrev} ${Version}' chromium 2>/dev/null | awk '$1 == "ii" { print $2 }' || true; }
installed="$(chromium_installed)"
if [[ "$installed" != "$CHROMIUM_VERSION" ]]; then
  apt-get update -qq
  if apt-cache madison chromium | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | grep -qxF "$CHROMIUM_VERSION"; then
    echo "== apt-get install chromium=$CHROMIUM_VERSION (found: ${installed:-none})"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "chromium=$CHROMIUM_VERSION" >/dev/null
  else
    echo "== chromium $CHROMIUM_VERSION is no longer offered by Debian (found: ${installed:-none})"
    [[ -n "$installed" ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  using="$(chromium_installed)"
  if [[ -z "$using" ]] || (( ${using%%.*} < CHROMIUM_MIN_MAJOR )); then
    echo "FAIL: chromium ${using:-(not installed)} is older than $CHROMIUM_MIN_MAJOR" >&2
    exit 1
  fi
fi

ensure_venv "$VENV" "playwright==$PLAYWRIGHT_VERSION" "botocore==$BOTOCORE_VERSION"

echo "== the vendored chart library is the pinned one"
bash scripts/vendor_uplot.sh --check

echo "== the page in chromium $(dpkg-query -W -f '${Version}' chromium), Playwright $PLAYWRIGHT_VERSION"
"$VENV/bin/python" scripts/check_page.py --kubecur "$KUBECUR" --chromium /usr/bin/chromium "$@"
