#!/usr/bin/env bash
# Load benchmark of `kubecur serve` (issue 9): requests/s and p50/p99 latency of GET /allocation for a
# month by namespace and a month by pod, over a generated CUR, loopback only and bounded in time.
#
#   bench/serve_load.sh [ROWS] [SECONDS] [CONNECTIONS]        (defaults 200000, 10, 16)
#   PROFILE=1 bench/serve_load.sh …   also samples the server with perf (Linux `perf`, when installed)
#                                     during a second run of each query and prints its top functions.
#
# The client is wrk (Debian's package, pinned; installed here when missing) with 2 threads and
# CONNECTIONS keep-alive connections, one run of SECONDS per query after a 2-second warm-up. Client and
# server share the machine: on 2 cores that halves what the server alone could do.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kubecur-target}"
rows="${1:-200000}"
seconds="${2:-10}"
connections="${3:-16}"
WRK_VERSION="4.1.0-3+b2"
KUBECUR="$CARGO_TARGET_DIR/release/kubecur"

if ((rows > 1000000 || seconds > 60 || connections > 256)); then
  echo "bounded: at most 1,000,000 rows, 60 s and 256 connections" >&2
  exit 2
fi
if ! command -v wrk >/dev/null; then
  echo "== installing wrk=$WRK_VERSION (Debian)"
  apt-get install -y -q "wrk=$WRK_VERSION" >/dev/null
fi
if [[ ! -x "$KUBECUR" ]]; then
  echo "$KUBECUR is missing: cargo test --release --workspace --all-targets --no-run (the test build, reused)" >&2
  exit 1
fi

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

echo "== kubecur sample --rows $rows (legacy CUR Parquet)"
"$KUBECUR" sample --out "$work/cur" --rows "$rows" --only legacy-parquet >/dev/null
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
"$KUBECUR" serve --cur "$work/cur/legacy-parquet" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server_pid=$!
started=$(date +%s)
until curl -fsS "$base/status" >/dev/null 2>&1; do
  if ! kill -0 "$server_pid" 2>/dev/null || (($(date +%s) - started > 600)); then
    cat "$work/serve.log" >&2
    echo "kubecur serve did not start" >&2
    exit 1
  fi
  sleep 0.2
done
echo "loaded and serving after $(($(date +%s) - started)) s ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"

window="2024-06-01T00:00:00Z,2024-07-01T00:00:00Z"
printf '\n| query | groups | body bytes | requests/s | p50 | p99 | errors |\n|---|---|---|---|---|---|---|\n' >"$work/table.md"
for aggregate in namespace pod; do
  url="$base/allocation?window=$window&aggregate=$aggregate"
  curl -fsS "$url" -o "$work/body.json"
  groups="$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["data"][0]))' "$work/body.json")"
  bytes="$(wc -c <"$work/body.json")"
  wrk -t2 -c"$connections" -d2s "$url" >/dev/null
  wrk -t2 -c"$connections" -d"${seconds}s" --latency "$url" >"$work/wrk.txt"
  cat "$work/wrk.txt"
  rps="$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.txt")"
  p50="$(awk '$1 == "50%" { print $2 }' "$work/wrk.txt")"
  p99="$(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")"
  errors="$(awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }' "$work/wrk.txt")"
  printf '| a month by %s | %s | %s | %s | %s | %s | %s |\n' "$aggregate" "$groups" "$bytes" "$rps" "$p50" "$p99" "${errors:-0}" >>"$work/table.md"
  if [[ "${PROFILE:-0}" == 1 ]] && command -v perf >/dev/null; then
    wrk -t2 -c"$connections" -d"$((seconds + 2))s" "$url" >/dev/null &
    load_pid=$!
    sleep 1
    perf record -q -F 499 -g -p "$server_pid" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1 || true
    # Only the load generator: a bare `wait` would also wait for the server.
    wait "$load_pid" || true
    echo "== where the server spends its time, a month by $aggregate (perf, self time)"
    # awk reads to the end: `head` would close the pipe early, and with pipefail that ends the script.
    perf report -i "$work/perf.data" --no-children --stdio 2>/dev/null | awk '/^ +[0-9]+\.[0-9]+%/ && ++n <= 15'
  fi
done
echo
echo "kubecur serve, $rows line items, wrk -t2 -c$connections -d${seconds}s, $(nproc) CPUs shared by client and server:"
cat "$work/table.md"
