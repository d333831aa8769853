#!/usr/bin/env python3
"""Benchmark: the native engine (feature `native-engine`, no DataFusion) against DuckDB on the same files.

Like bench/allocate_vs_duckdb.py, but kubecur's side is `examples/native_allocate` (the CLI is not
wired to the native engine yet): the whole example process (listing, footers, planning, the scan), full
grain, window 2024-05-01..2024-07-01, against DuckDB running kubecur's Athena SQL for the same
allocation (transpiled by sqlglot), query time only. Checks per-namespace amortized net cost agrees,
prints medians, peak RSS (os.wait4) and line items per second. Usage:

    cargo build --release -p kubecur-shared --features native-engine --example native_allocate
    cargo run --release -p kubecur-shared --features native-engine --example native_allocate -- \\
        sample /var/tmp/kubecur-bench 10000000
    python3 bench/native_vs_duckdb.py [--cur /var/tmp/kubecur-bench/legacy-parquet] [--runs 5] [--threads N]

Needs `pip install duckdb==2.0.1 sqlglot==30.30.0`.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from allocate_vs_duckdb import DUCKDB_CHILD, peak_rss_of  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cur", default="/var/tmp/kubecur-bench/legacy-parquet")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", default="")
    parser.add_argument("--rows", type=int, default=10_000_000, help="line items in the files (for the rate)")
    args = parser.parse_args()
    import sqlglot

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    binary = os.path.join(target, "release", "examples", "native_allocate")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build it (see --help)")
    window = ["2024-05-01", "2024-07-01"]
    athena_sql = subprocess.run([binary, "sql", args.cur, *window], check=True, capture_output=True, text=True).stdout
    duck_sql = sqlglot.transpile(athena_sql, read="trino", write="duckdb")[0]
    glob = os.path.join(args.cur, "kubecur-sample", "kubecur-sample", "year=*", "month=*", "*.parquet")
    source = f"read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false)"
    duck_sql = duck_sql.replace('"bench"."cur"', source).replace("bench.cur", source)
    if source not in duck_sql:
        sys.exit("could not substitute the table in the transpiled SQL:\n" + duck_sql)

    threads = [args.threads] if args.threads else [str(os.cpu_count() or 2)]
    native, native_rss, duck, duck_rss = [], [], [], []
    native_out = duck_out = None
    for run in range(args.runs):
        wall, rss, out, _ = peak_rss_of([binary, "allocate", args.cur, *threads, *window])
        native.append(wall)
        native_rss.append(rss)
        native_out = out
        _, rss, out, _ = peak_rss_of([sys.executable, "-c", DUCKDB_CHILD], duck_sql)
        result = json.loads(out)
        duck.append(result["seconds"])
        duck_rss.append(rss)
        duck_out = result
        print(f"run {run + 1}: native {native[-1]:.2f} s, {native_rss[-1] / 2**20:.0f} MiB; duckdb {duck[-1]:.2f} s, {duck_rss[-1] / 2**20:.0f} MiB", flush=True)

    lines = native_out.splitlines()
    items = args.rows
    native_ns = {k: float(v) for k, v in (line.split("\t") for line in lines[1:])}
    cols = duck_out["columns"]
    ns_i, cost_i = cols.index("namespace"), cols.index("amortized_net_cost")
    duck_ns = {}
    for row in duck_out["rows"]:
        duck_ns[row[ns_i]] = duck_ns.get(row[ns_i], 0.0) + float(row[cost_i])
    bad = [k for k in set(native_ns) | set(duck_ns)
           if abs(native_ns.get(k, 0) - duck_ns.get(k, 0)) > 1e-6 * max(1.0, abs(duck_ns.get(k, 0)))]
    if bad:
        sys.exit(f"results differ for namespaces {bad}: native {native_ns} vs duckdb {duck_ns}")
    print(f"results agree: {len(native_ns)} namespaces, {len(duck_out['rows'])} full-grain groups (DuckDB)")
    n, d = statistics.median(native), statistics.median(duck)
    print(f"native engine (whole process): median {n:.2f} s, peak RSS {max(native_rss) / 2**20:.0f} MiB, {items / n / 1e6:.2f} M line items/s")
    print(f"DuckDB (query only):           median {d:.2f} s, peak RSS {max(duck_rss) / 2**20:.0f} MiB, {items / d / 1e6:.2f} M line items/s")
    print(f"ratio native / DuckDB: {n / d:.2f}")


if __name__ == "__main__":
    main()
