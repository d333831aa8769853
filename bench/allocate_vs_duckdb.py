#!/usr/bin/env python3
"""Benchmark: `kubecur allocate` against DuckDB running the equivalent SQL over the same files.

Generates (once) a legacy-CUR Parquet sample of --rows line items with `kubecur sample`, then runs, in
the same session, alternating, --runs times each:
  * kubecur: the whole `kubecur allocate --aggregate <full grain> --format csv` process (listing, schema
    reads, tag probe and allocation query included);
  * DuckDB: the Athena SQL kubecur renders for the same data (`--show-sql athena`), transpiled to DuckDB
    by sqlglot, over the same Parquet files (query time only, inside a fresh process).
It checks that both give the same per-namespace totals, then prints median wall time, the ratio, peak
RSS (os.wait4 of each child) and rows/s. Usage:

    python3 bench/allocate_vs_duckdb.py [--rows 10000000] [--runs 3] [--dir /var/tmp/kubecur-bench]

Needs: the release build (`cargo build --release -p kubecur`), `pip install duckdb==2.0.1 sqlglot==30.30.0`.
"""
import argparse
import csv
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time

FULL_GRAIN = "day,cluster,namespace,deployment,pod,daemonset,container,service,account"


def kubecur_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    path = os.path.join(target, "release", "kubecur")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: run `cargo build --release -p kubecur` first (CARGO_TARGET_DIR={target})")
    return path


def peak_rss_of(argv, stdin_text=None, env=None):
    """Runs argv with os.wait4 to read that child's own peak RSS; returns (wall, rss_bytes, stdout, stderr)."""
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=write_fd, stderr=subprocess.PIPE, text=True, env=env)
    os.close(write_fd)
    if stdin_text is not None:
        child.stdin.write(stdin_text)
    child.stdin.close()
    chunks = []
    with os.fdopen(read_fd, "r") as reader:
        chunks.append(reader.read())
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed: {err}")
    return wall, usage.ru_maxrss * 1024, "".join(chunks), err


DUCKDB_CHILD = r"""
import json, sys, time, duckdb
sql = sys.stdin.read()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
started = time.perf_counter()
rows = con.execute(sql).fetchall()
elapsed = time.perf_counter() - started
names = [d[0] for d in con.description]
print(json.dumps({"seconds": elapsed, "columns": names, "rows": rows}, default=str))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="/var/tmp/kubecur-bench")
    args = parser.parse_args()

    import sqlglot  # noqa: imported late so --help works without it

    binary = kubecur_binary()
    data = os.path.join(args.dir, f"rows-{args.rows}")
    cur = os.path.join(data, "legacy-parquet")
    if not os.path.isdir(cur):
        print(f"generating {args.rows} line items into {data} …", flush=True)
        subprocess.run([binary, "sample", "--out", data, "--rows", str(args.rows), "--only", "legacy-parquet"], check=True)
    files = [os.path.join(root, f) for root, _, names in os.walk(cur) for f in names if f.endswith(".parquet") and "status" not in root]
    size = sum(os.path.getsize(f) for f in files)
    print(f"data: {args.rows} line items, {len(files)} Parquet files, {size / 2**20:.0f} MiB, window 2024-05-01..2024-07-01 (all of it)")

    # Both billing periods: every file is read by both engines.
    common = ["--cur", cur, "--from", "2024-05-01", "--to", "2024-07-01", "--aggregate", FULL_GRAIN]
    athena_sql = subprocess.run([binary, "allocate", *common, "--show-sql", "athena", "--athena-table", "bench.cur"],
                                check=True, capture_output=True, text=True).stdout
    duck_sql = sqlglot.transpile(athena_sql, read="trino", write="duckdb")[0]
    glob = os.path.join(cur, "kubecur-sample", "kubecur-sample", "year=*", "month=*", "*.parquet")
    source = f"read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false)"
    duck_sql = duck_sql.replace('"bench"."cur"', source).replace("bench.cur", source)
    if source not in duck_sql:
        sys.exit("could not substitute the table in the transpiled SQL:\n" + duck_sql)

    kube_times, kube_query_times, kube_rss, duck_times, duck_rss = [], [], [], [], []
    # kubecur logs its allocation query's own time at debug level: the like-for-like figure.
    kube_env = dict(os.environ, KUBECUR_LOG="kubecur_shared::service=debug", NO_COLOR="1")
    kube_out = duck_out = None
    for run in range(args.runs):
        wall, rss, out, err = peak_rss_of([binary, "allocate", *common, "--format", "csv"], env=kube_env)
        query_ms = re.findall(r"Allocation query finished\..*?elapsed_ms\W*=\W*(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", err))
        if not query_ms:
            sys.exit("kubecur did not log its query time:\n" + err)
        kube_query_times.append(int(query_ms[-1]) / 1000)
        kube_times.append(wall)
        kube_rss.append(rss)
        kube_out = out
        wall, rss, out, _ = peak_rss_of([sys.executable, "-c", DUCKDB_CHILD], duck_sql)
        duck = json.loads(out)
        duck_times.append(duck["seconds"])
        duck_rss.append(rss)
        duck_out = duck
        print(f"run {run + 1}: kubecur {kube_times[-1]:.2f} s (query {kube_query_times[-1]:.2f} s), {kube_rss[-1] / 2**20:.0f} MiB; duckdb {duck_times[-1]:.2f} s, {duck_rss[-1] / 2**20:.0f} MiB", flush=True)

    # Same answer? Compare per-namespace amortized net cost.
    kube_ns = {}
    reader = csv.DictReader(io.StringIO(kube_out))
    for row in reader:
        kube_ns[row["namespace"]] = kube_ns.get(row["namespace"], 0.0) + float(row["amortizedNetCost"])
    cols = duck_out["columns"]
    ns_i, cost_i = cols.index("namespace"), cols.index("amortized_net_cost")
    duck_ns = {}
    for row in duck_out["rows"]:
        duck_ns[row[ns_i]] = duck_ns.get(row[ns_i], 0.0) + float(row[cost_i])
    mismatched = [k for k in set(kube_ns) | set(duck_ns) if abs(kube_ns.get(k, 0) - duck_ns.get(k, 0)) > 1e-6 * max(1.0, abs(duck_ns.get(k, 0)))]
    if mismatched:
        sys.exit(f"results differ for namespaces {mismatched}: kubecur {kube_ns} vs duckdb {duck_ns}")
    print(f"results agree: {len(kube_ns)} namespaces, {len(duck_out['rows'])} full-grain groups (DuckDB)")

    k, d = statistics.median(kube_times), statistics.median(duck_times)
    kq = statistics.median(kube_query_times)
    print()
    print(f"kubecur allocate (whole process): median {k:.2f} s, peak RSS {max(kube_rss) / 2**20:.0f} MiB, {args.rows / k / 1e6:.2f} M line items/s")
    print(f"kubecur allocation query only:    median {kq:.2f} s, {args.rows / kq / 1e6:.2f} M line items/s")
    print(f"duckdb 2.0.1 (query only):        median {d:.2f} s, peak RSS {max(duck_rss) / 2**20:.0f} MiB, {args.rows / d / 1e6:.2f} M line items/s")
    print(f"ratio kubecur / duckdb: whole process {k / d:.2f}, query to query {kq / d:.2f} (target <= 1.00); kubecur peak memory target < 2048 MiB")


if __name__ == "__main__":
    main()
