#!/usr/bin/env python3
"""Benchmark at scale: time and peak memory of `kubecur allocate` and DuckDB as the CUR grows.

For each --rows (default 1 M, 10 M and 50 M line items), generates once with `kubecur sample` a
legacy-CUR Parquet export of one month (May 2024, `--days 31`) whose estate has --pods resources each
tagged with a pod of its own (default 1,000,000), then runs, alternating, --runs times each:
  * kubecur: the whole `kubecur allocate --period 2024-05 --aggregate <full grain> --format csv` process,
    its CSV written to a file;
  * DuckDB: the Athena SQL kubecur renders for the same data, transpiled by sqlglot, materialised as a
    table (query time only, inside a fresh process).
The full-grain answer has millions of groups, so the answers are compared by summary rather than row by
row: the number of groups, and the amortized net cost of every pod (to 1e-6 relative). It prints one
line per size: median wall time, peak RSS (os.wait4 of each child), groups, line items per second.
Usage:

    python3 bench/scale.py [--rows 1000000,10000000,50000000] [--pods 1000000] [--runs 1] [--dir /var/tmp/kubecur-bench]

Needs: the release build (`cargo build --release -p kubecur`), `pip install duckdb==2.0.1 sqlglot==30.30.0`.
The 50 M sample takes 2.7 GiB of disk and kubecur's CSV answer 3.2 GB more (in the temporary
directory); DuckDB's query over it needs about 20 GiB of memory.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from allocate_vs_duckdb import FULL_GRAIN, kubecur_binary, rendered_sql  # noqa: E402

DUCKDB_CHILD = r"""
import json, sys, time, duckdb
sql = sys.stdin.read()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
started = time.perf_counter()
con.execute("CREATE TEMP TABLE answer AS " + sql)
elapsed = time.perf_counter() - started
groups = con.execute("SELECT COUNT(*) FROM (SELECT DISTINCT * EXCLUDE (allocated, list_cost, net_cost, amortized_cost, amortized_net_cost, resources, line_items) FROM answer)").fetchone()[0]
pods = con.execute("SELECT pod, SUM(amortized_net_cost) FROM answer GROUP BY pod").fetchall()
print(json.dumps({"seconds": elapsed, "groups": groups, "pods": {p: c for p, c in pods}}))
"""


def peak_rss_child(argv, stdin_text=None, stdout_path=None, env=None):
    """Runs argv (stdout to `stdout_path` or returned); returns (wall seconds, the child's own peak RSS
    in bytes from os.wait4, stdout text or None)."""
    out = open(stdout_path, "w") if stdout_path else subprocess.PIPE
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE, text=True, env=env)
    if stdin_text is not None:
        child.stdin.write(stdin_text)
    child.stdin.close()
    text = child.stdout.read() if not stdout_path else None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if stdout_path:
        out.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed: {err}")
    return wall, usage.ru_maxrss * 1024, text


def kubecur_summary(path):
    """Groups and per-pod amortized net cost of kubecur's CSV, read as a stream."""
    groups, pods = 0, {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            groups += 1
            pods[row["pod"]] = pods.get(row["pod"], 0.0) + float(row["amortizedNetCost"])
    return groups, pods


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000,50000000")
    parser.add_argument("--pods", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--dir", default="/var/tmp/kubecur-bench")
    args = parser.parse_args()

    binary = kubecur_binary()
    sizes = [int(r) for r in args.rows.split(",")]
    table = []
    for rows in sizes:
        data = os.path.join(args.dir, f"scale-{rows}-pods-{args.pods}-may")
        cur = os.path.join(data, "legacy-parquet")
        if not os.path.isdir(cur):
            print(f"generating {rows} line items, {args.pods} pods, May 2024, into {data} …", flush=True)
            subprocess.run([binary, "sample", "--out", data, "--rows", str(rows), "--pods", str(args.pods),
                            "--days", "31", "--only", "legacy-parquet"], check=True)
        common = ["--cur", cur, "--period", "2024-05", "--aggregate", FULL_GRAIN]
        _, duck_sql, _ = rendered_sql(binary, cur, common)

        kube_times, kube_rss, duck_times, duck_rss = [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            answer = os.path.join(tmp, "kubecur.csv")
            for _ in range(args.runs):
                wall, rss, _ = peak_rss_child([binary, "allocate", *common, "--format", "csv"], stdout_path=answer,
                                              env=dict(os.environ, NO_COLOR="1"))
                kube_times.append(wall)
                kube_rss.append(rss)
                _, rss, out = peak_rss_child([sys.executable, "-c", DUCKDB_CHILD], stdin_text=duck_sql)
                duck = json.loads(out)
                duck_times.append(duck["seconds"])
                duck_rss.append(rss)
                print(f"{rows}: kubecur {wall:.2f} s {kube_rss[-1] / 2**20:.0f} MiB; duckdb {duck['seconds']:.2f} s {rss / 2**20:.0f} MiB", flush=True)
            groups, pods = kubecur_summary(answer)
        if groups != duck["groups"]:
            sys.exit(f"{rows}: kubecur has {groups} groups, DuckDB {duck['groups']}")
        differ = [p for p in set(pods) | set(duck["pods"])
                  if abs(pods.get(p, 0.0) - duck["pods"].get(p, 0.0)) > 1e-6 * max(1.0, abs(duck["pods"].get(p, 0.0)))]
        if differ:
            sys.exit(f"{rows}: {len(differ)} pods differ, e.g. {differ[:3]}")
        k, d = statistics.median(kube_times), statistics.median(duck_times)
        table.append((rows, groups, len(pods), k, max(kube_rss), d, max(duck_rss)))
        print(f"{rows}: answers agree ({groups} groups, {len(pods)} pods)", flush=True)

    print()
    print("| line items | groups | pods | kubecur whole process | kubecur peak RSS | DuckDB query | DuckDB peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for rows, groups, pods, k, kr, d, dr in table:
        print(f"| {rows:,} | {groups:,} | {pods:,} | {k:.2f} s | {kr / 2**20:,.0f} MiB | {d:.2f} s | {dr / 2**20:,.0f} MiB |")
    print("target: kubecur peak RSS < 2,048 MiB at 50 M line items with the same answer as DuckDB")


if __name__ == "__main__":
    main()
