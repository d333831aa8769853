#!/usr/bin/env python3
"""Checks that the benchmarks' answer comparison can fail: `python3 bench/test_compare.py`.

bench/allocate_vs_duckdb.py exits when kubecur's full-grain answer and another engine's differ; these
cases feed it a missing group, an extra group and a wrong cost, and one equal answer.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from allocate_vs_duckdb import KEYS, compare, groups_of_csv, groups_of_result  # noqa: E402


def refused(expected, actual):
    try:
        compare("engine", expected, actual)
    except SystemExit as stop:
        return str(stop)
    return None


def main():
    header = ",".join(KEYS) + ",amortizedNetCost\n"
    key = ["2024-06-01", "prod", "payments", "api", "p-1", "__unallocated__", "server", "AmazonRDS", "111122223333"]
    kubecur = groups_of_csv(header + ",".join(key) + ",10.5\n")
    columns = KEYS + ["allocated", "amortized_net_cost"]
    same = groups_of_result({"columns": columns, "rows": [key + [1, 10.5]]})
    assert refused(kubecur, same) is None, "equal answers were refused"
    wrong = groups_of_result({"columns": columns, "rows": [key + [1, 10.6]]})
    assert "1 with other costs" in (refused(kubecur, wrong) or ""), "a wrong cost passed"
    other = key[:2] + ["search"] + key[3:]
    extra = groups_of_result({"columns": columns, "rows": [key + [1, 10.5], other + [1, 0.0]]})
    assert "1 extra" in (refused(kubecur, extra) or ""), "an extra group passed"
    assert "1 groups missing" in (refused(kubecur, {}) or ""), "a missing group passed"
    print("ok: the benchmark's comparison refuses a wrong cost, an extra group and a missing group")


if __name__ == "__main__":
    main()
