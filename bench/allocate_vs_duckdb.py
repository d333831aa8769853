#!/usr/bin/env python3
"""Benchmark: `kubecur allocate` against DuckDB and polars running the equivalent SQL over the same files.

Generates (once) a legacy-CUR Parquet sample of --rows line items with `kubecur sample`, then runs, in
the same session, alternating, --runs times each:
  * kubecur: the whole `kubecur allocate --aggregate <full grain> --format csv` process (listing, schema
    reads, planning and the allocation query included);
  * DuckDB: the Athena SQL kubecur renders for the same data (`--show-sql athena`), transpiled to DuckDB
    by sqlglot, over the same Parquet files (query time only, inside a fresh process);
  * polars: the same Athena SQL transpiled by sqlglot (PostgreSQL dialect) and run lazily by polars'
    SQL context over `scan_parquet` of the same files (query and collect only, inside a fresh process).
It checks that the three give the same full-grain answer group by group (every key, amortized net cost
to 1e-6 relative), then prints median wall time, the ratios, peak RSS (os.wait4 of each child) and
line items per second. Usage:

    python3 bench/allocate_vs_duckdb.py [--rows 10000000] [--runs 3] [--dir /var/tmp/kubecur-bench] [--no-polars]

Needs: the release build (`cargo build --release -p kubecur`) and
`pip install duckdb==2.0.1 sqlglot==30.30.0 polars==2.1.0`.
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
        sys.exit(f"{path} not found: run `scripts/test` or `cargo build --release -p kubecur` first (CARGO_TARGET_DIR={target})")
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


POLARS_CHILD = r"""
import json, sys, time, polars as pl
glob = sys.argv[1]
sql = sys.stdin.read()
# Hive partition values stay text, as Athena's partition columns are (`"year" = '2024'`).
frame = pl.scan_parquet(glob, hive_partitioning=True, hive_schema={"year": pl.String, "month": pl.String})
context = pl.SQLContext(cur=frame, eager=False)
started = time.perf_counter()
result = context.execute(sql).collect()
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "columns": result.columns, "rows": result.rows()}, default=str))
"""

KEYS = FULL_GRAIN.split(",")


def groups_of_csv(text):
    """kubecur's CSV: key columns, then the metric; one row per group."""
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        key = tuple(row[k] for k in KEYS)
        out[key] = out.get(key, 0.0) + float(row["amortizedNetCost"])
    return out


def groups_of_result(result):
    """A SQL engine's rows (the allocated flag is a further column: summed over it, as kubecur's display)."""
    cols = result["columns"]
    at = [cols.index(k) for k in KEYS]
    cost = cols.index("amortized_net_cost")
    out = {}
    for row in result["rows"]:
        key = tuple(str(row[i]) for i in at)
        out[key] = out.get(key, 0.0) + float(row[cost])
    return out


def compare(name, expected, actual):
    """Exits naming the first groups that differ between kubecur's answer and another engine's."""
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    differ = [k for k in expected if k in actual and abs(expected[k] - actual[k]) > 1e-6 * max(1.0, abs(expected[k]))]
    if missing or extra or differ:
        sys.exit(f"{name} differs from kubecur: {len(missing)} groups missing (e.g. {missing[:2]}), "
                 f"{len(extra)} extra (e.g. {extra[:2]}), {len(differ)} with other costs "
                 f"(e.g. {[(k, expected[k], actual[k]) for k in differ[:2]]})")


def rendered_sql(binary, cur, common):
    """kubecur's Athena SQL for `allocate <common>` over the sample at `cur`, the same transpiled to
    DuckDB reading the sample's Parquet files, and their glob: (athena, duckdb, glob)."""
    import sqlglot  # noqa: imported late so --help works without it

    athena_sql = subprocess.run([binary, "allocate", *common, "--show-sql", "athena", "--athena-table", "bench.cur"],
                                check=True, capture_output=True, text=True).stdout
    duck_sql = sqlglot.transpile(athena_sql, read="trino", write="duckdb")[0]
    glob = os.path.join(cur, "kubecur-sample", "kubecur-sample", "year=*", "month=*", "*.parquet")
    source = f"read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false)"
    duck_sql = duck_sql.replace('"bench"."cur"', source).replace("bench.cur", source)
    if source not in duck_sql:
        sys.exit("could not substitute the table in the transpiled SQL:\n" + duck_sql)
    return athena_sql, duck_sql, glob


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="/var/tmp/kubecur-bench")
    parser.add_argument("--no-polars", action="store_true", help="leave polars out (it needs several GiB at 10 M line items)")
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
    athena_sql, duck_sql, glob = rendered_sql(binary, cur, common)

    # polars' SQL takes PostgreSQL's dialect, but not a timestamp precision of 0.
    polars_sql = sqlglot.transpile(athena_sql, read="trino", write="postgres")[0]
    polars_sql = polars_sql.replace('"bench"."cur"', "cur").replace("bench.cur", "cur").replace("AS TIMESTAMP(0))", "AS TIMESTAMP)")
    if " cur" not in polars_sql:
        sys.exit("could not substitute the table in the SQL for polars:\n" + polars_sql)

    kube_times, kube_query_times, kube_rss, duck_times, duck_rss = [], [], [], [], []
    polars_times, polars_rss, polars_out = [], [], None
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
        line = f"run {run + 1}: kubecur {kube_times[-1]:.2f} s (query {kube_query_times[-1]:.2f} s), {kube_rss[-1] / 2**20:.0f} MiB; duckdb {duck_times[-1]:.2f} s, {duck_rss[-1] / 2**20:.0f} MiB"
        if not args.no_polars:
            wall, rss, out, _ = peak_rss_of([sys.executable, "-c", POLARS_CHILD, glob], polars_sql)
            polars = json.loads(out)
            polars_times.append(polars["seconds"])
            polars_rss.append(rss)
            polars_out = polars
            line += f"; polars {polars_times[-1]:.2f} s, {polars_rss[-1] / 2**20:.0f} MiB"
        print(line, flush=True)

    # Same answer, group by group.
    kube_groups = groups_of_csv(kube_out)
    compare("DuckDB", kube_groups, groups_of_result(duck_out))
    if polars_out is not None:
        compare("polars", kube_groups, groups_of_result(polars_out))
    engines = "DuckDB and polars" if polars_out is not None else "DuckDB"
    print(f"results agree group by group: {len(kube_groups)} full-grain groups, kubecur and {engines}")

    k, d = statistics.median(kube_times), statistics.median(duck_times)
    kq = statistics.median(kube_query_times)
    print()
    print(f"kubecur allocate (whole process): median {k:.2f} s, peak RSS {max(kube_rss) / 2**20:.0f} MiB, {args.rows / k / 1e6:.2f} M line items/s")
    print(f"kubecur allocation query only:    median {kq:.2f} s, {args.rows / kq / 1e6:.2f} M line items/s")
    print(f"duckdb 2.0.1 (query only):        median {d:.2f} s, peak RSS {max(duck_rss) / 2**20:.0f} MiB, {args.rows / d / 1e6:.2f} M line items/s")
    if polars_times:
        p = statistics.median(polars_times)
        print(f"polars 2.1.0 lazy (query only):   median {p:.2f} s, peak RSS {max(polars_rss) / 2**20:.0f} MiB, {args.rows / p / 1e6:.2f} M line items/s")
        print(f"ratio kubecur (whole process) / polars: {k / p:.2f} (target < 1.00)")
    print(f"ratio kubecur / duckdb: whole process {k / d:.2f} (target <= 0.67), query to query {kq / d:.2f}; kubecur peak memory target < 2048 MiB")


if __name__ == "__main__":
    main()
