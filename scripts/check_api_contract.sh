#!/usr/bin/env bash
# Contract test of the HTTP API against its OpenAPI 3.1 document (issue 9), run from .ci/run after the
# tests:
#   1. `kubecur sample` writes a small legacy CUR; `kubecur serve` allocates it and listens on a free
#      loopback port (the release binary: $CARGO_TARGET_DIR/release/kubecur);
#   2. schemathesis (pinned, in a venv under /var/tmp/kubecur-venvs) reads the document the server
#      itself serves at GET /openapi.json and sends generated requests, valid and invalid, to every
#      operation, checking each response: no 5xx, a documented status code, content type, headers and
#      body schema, 405 with an Allow header for undocumented methods;
#   3. passes only with at least MIN_REQUESTS generated test cases and no failure; the counts are printed.
#
#   scripts/check_api_contract.sh [MAX_EXAMPLES]       (default 1500 per operation)
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
MIN_REQUESTS=1000
MAX_EXAMPLES="${1:-1500}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kubecur-target}"
KUBECUR="$CARGO_TARGET_DIR/release/kubecur"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
VENV="$VENV_ROOT/schemathesis"

if [[ ! -x "$KUBECUR" ]]; then
  echo "FAIL: $KUBECUR is missing; build it first: cargo test --release --workspace --all-targets --no-run (the test build; other target sets resolve other features and rebuild the engine)" >&2
  exit 1
fi

ensure_venv "$VENV" "schemathesis==$SCHEMATHESIS_VERSION"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== kubecur sample (20,000 line items, legacy CUR Parquet)"
"$KUBECUR" sample --out "$work/cur" --rows 20000 --only legacy-parquet >/dev/null

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
echo "== kubecur serve on $base"
"$KUBECUR" serve --cur "$work/cur/legacy-parquet" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  if curl -fsS "$base/status" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/serve.log" >&2
    echo "FAIL: kubecur serve exited" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$base/status" >/dev/null

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance"
echo "== schemathesis $SCHEMATHESIS_VERSION: $base/openapi.json, checks $checks, up to $MAX_EXAMPLES examples per operation"
status=0
"$VENV/bin/st" run "$base/openapi.json" \
  --checks "$checks" \
  --mode all \
  --max-examples "$MAX_EXAMPLES" \
  --seed 20240601 \
  --workers 2 \
  --request-timeout 10 \
  --report junit --report-junit-path "$work/junit.xml" \
  --no-color >"$work/st.log" 2>&1 || status=$?
cat "$work/st.log"

# The run's counts, from its summary ("Test cases: N generated, N passed").
generated="$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$work/st.log" | tail -1)"
generated="${generated:-0}"
if [[ $status -ne 0 ]]; then
  echo "FAIL: schemathesis exited $status (see above)" >&2
  exit 1
fi
if ((generated < MIN_REQUESTS)); then
  echo "FAIL: only $generated test cases were generated, fewer than $MIN_REQUESTS" >&2
  exit 1
fi
echo "ok: API contract: $generated generated requests, 0 server errors, 0 schema violations (schemathesis $SCHEMATHESIS_VERSION)"
