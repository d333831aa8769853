# Pinned Python tools in venvs under /var/tmp/kubecur-venvs (override: KUBECUR_VENVS), shared by the
# check scripts (check_terraform.sh, check_sam.sh, check_api_contract.sh, check_page.sh). Sourced, not run.

VENV_ROOT="${KUBECUR_VENVS:-/var/tmp/kubecur-venvs}"

# pinned_version VENV PACKAGE: the installed version, or nothing.
pinned_version() {
  "$1/bin/python" -m pip show "$2" 2>/dev/null | sed -n 's/^Version: //p' || true
}

# ensure_venv VENV PACKAGE==VERSION...: creates VENV on demand and installs the pins that are missing,
# under the lock VENV.lock so concurrent check scripts never install into the same venv at once; a venv
# holding the pinned versions is left alone.
ensure_venv() {
  local venv="$1"
  shift
  mkdir -p "$VENV_ROOT"
  (
    flock 9
    if [[ ! -x "$venv/bin/python" ]]; then
      echo "== creating $venv"
      python3 -m venv "$venv"
    fi
    local missing=() pin
    for pin in "$@"; do
      if [[ "$(pinned_version "$venv" "${pin%%==*}")" != "${pin##*==}" ]]; then
        missing+=("$pin")
      fi
    done
    if ((${#missing[@]})); then
      echo "== pip install ${missing[*]} into $venv"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
    fi
  ) 9>"$venv.lock"
}
