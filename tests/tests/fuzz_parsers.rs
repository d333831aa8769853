//! Every parser of outside input, fuzzed with proptest: S3 / EventBridge / Athena events, manifests, the
//! legacy status object, OpenCost windows and query strings, the Athena result CSV, tag JSON and tag
//! mappings, CUR CSV headers. Each gets arbitrary input (any string, any bytes) and structure-aware
//! input (near-valid: real fixtures mutated, known field names with wrong values, real column names with
//! odd characters). The property is the same everywhere: the parser answers (a value or an error), it
//! never panics. Proptest catches a panic, shrinks the input and fails the test with it; every panic
//! found so far is fixed and kept below as a plain regression test.
//!
//! The cases run per parser are written to stderr (`fuzz: <parser>: <n> cases`), past the test
//! harness's capture, so `scripts/test` and `.ci/run` show them.

use chrono::NaiveDate;
use kubecur_shared::adapters::aws::s3::{legacy_status_ready, split_uri, CsvParser};
use kubecur_shared::adapters::files::{canonical_names, parse_csv_header, period_of, CurLocation};
use kubecur_shared::api::{self, ApiRequest, MemoryStore};
use kubecur_shared::config::tag_mapping;
use kubecur_shared::domain::columns::ColumnSet;
use kubecur_shared::domain::delivery::{classify, decode_event_key, parse_manifest};
use kubecur_shared::domain::snapshot::{
    build_snapshot, split_by_period, SnapshotInfo, SnapshotOrigin,
};
use kubecur_shared::domain::sql::render_allocation;
use kubecur_shared::domain::tags::TagCell;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::{
    Allocation, AllocationPlan, AllocationRequest, AllocationRow, CostMetric, CostVector,
    Dimension, Flavour, TableRef, UsageWindow, UNALLOCATED,
};
use kubecur_shared::ports::TableSink;
use kubecur_shared::service::read_allocation;
use kubecur_tests::pipeline::fixture;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use std::io::Write;

/// Runs `check` on `cases` inputs drawn from `strategy`; fails with the shrunk input on a panic.
fn fuzz<S>(parser: &str, cases: u32, strategy: S, check: impl Fn(S::Value))
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&strategy, |input| {
        check(input);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{parser} panicked: {failure}");
    }
    // Past the harness's output capture on purpose: the counts belong in the test log.
    let _ = writeln!(std::io::stderr(), "fuzz: {parser}: {cases} cases");
}

/// Any bytes, biased to short.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..600)
}

/// Field names the events, manifests and API know, plus noise: mutated documents keep their shape.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "Records", "s3", "object", "key", "bucket", "name", "eTag", "etag", "eventTime",
            "eventName", "source", "detail-type", "detail", "time", "id", "account", "region",
            "resources", "version", "executionId", "dataFiles", "columns", "currentState",
            "queryExecutionId", "workgroupName", "sequencer", "size",
        ])
        .prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

/// Any JSON, with leaves that look like what AWS sends.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "aws.s3",
            "aws.athena",
            "Object Created",
            "Athena Query State Change",
            "SUCCEEDED",
            "FAILED",
            "RUNNING",
            "2024-06-01T00:00:00Z",
            "2024-06-01T00:00:00.123Z",
            "1999-99-99T99:99:99Z",
            "s3://bucket/key",
            "s3://",
            "s3:///k",
            "cur/r/metadata/BILLING_PERIOD=2024-06/r-Manifest.json",
            "cur/r/r/cost_and_usage_data_status/cost_and_usage_data_status.parquet",
            "a%zzb",
            "%",
            "+",
            "\"0123\"",
            "primary",
            "",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(json_key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Replaces (or, with `None`, removes) the node that `path` leads to, each step choosing a member by
/// index modulo the node's size.
fn mutate(value: &mut Value, path: &[usize], replacement: Option<Value>) {
    let Some((&step, rest)) = path.split_first() else {
        *value = replacement.unwrap_or(Value::Null);
        return;
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let Some(key) = map.keys().nth(step % map.len()).cloned() else {
                return;
            };
            if rest.is_empty() && replacement.is_none() {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rest, replacement);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let at = step % items.len();
            if rest.is_empty() && replacement.is_none() {
                items.remove(at);
            } else {
                mutate(&mut items[at], rest, replacement);
            }
        }
        _ => *value = replacement.unwrap_or(Value::Null),
    }
}

const FIXTURES: [&str; 10] = [
    "s3-notification-cur2-manifest.json",
    "s3-notification-legacy-status.json",
    "s3-notification-noise.json",
    "eventbridge-s3-object-created.json",
    "athena-query-state-change-succeeded.json",
    "athena-query-state-change-failed.json",
    "athena-query-state-change-running.json",
    "apigw-v2-allocation.json",
    "apigw-v2-status.json",
    "apigw-v2-unknown-route.json",
];

/// A real event fixture with up to four nodes replaced or removed.
fn mutated_event() -> impl Strategy<Value = Value> {
    let edits = proptest::collection::vec(
        (
            proptest::collection::vec(0usize..64, 0..7),
            proptest::option::weighted(0.8, json_value()),
        ),
        0..4,
    );
    (0..FIXTURES.len(), edits).prop_map(|(which, edits)| {
        let mut event = fixture(FIXTURES[which]);
        for (path, replacement) in edits {
            mutate(&mut event, &path, replacement);
        }
        event
    })
}

fn event() -> impl Strategy<Value = Value> {
    prop_oneof![3 => mutated_event(), 1 => json_value()]
}

#[test]
fn events_never_panic() {
    fuzz(
        "S3 / EventBridge events (cur-ingest)",
        1500,
        event(),
        |event| {
            let _ = cur_ingest::signals(&event);
        },
    );
    fuzz(
        "Athena state change events (allocation-writer)",
        1500,
        event(),
        |event| {
            let _ = allocation_writer::query_event(&event);
        },
    );
}

/// S3 keys: delivery layouts with odd segments and escapes.
fn s3_key() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        prop::sample::select(vec![
            "cur",
            "kubecur",
            "metadata",
            "data",
            "BILLING_PERIOD=2024-06",
            "BILLING_PERIOD=2024-13",
            "billing_period=",
            "year=2024",
            "month=6",
            "month=",
            "year=",
            "20240601-20240701",
            "cost_and_usage_data_status",
            "cost_and_usage_data_status.parquet",
            "r-Manifest.json",
            "Manifest.json",
            "crawler-cfn.yml",
            "aws-programmatic-access-test-object",
            "r-00001.snappy.parquet",
            "x.csv.gz",
            "",
            ".",
            "..",
            "_SUCCESS",
            "%2F",
            "a%3Db",
            "a+b",
        ])
        .prop_map(str::to_string),
        "[^/]{0,10}",
    ];
    prop_oneof![
        3 => proptest::collection::vec(segment, 0..8).prop_map(|s| s.join("/")),
        1 => any::<String>(),
        1 => "[%+0-9a-fA-FzZ/=]{0,30}",
    ]
}

#[test]
fn keys_and_manifests_never_panic() {
    fuzz(
        "S3 keys (decode_event_key, classify, split_uri, period_of, --cur s3://)",
        3000,
        s3_key(),
        |key| {
            let _ = decode_event_key(&key);
            let _ = classify(&key);
            let _ = split_uri(&key);
            let _ = split_uri(&format!("s3://{key}"));
            let _ = period_of(&key);
            if let Ok(location) = CurLocation::parse(&format!("s3://{key}")) {
                let _ = location.store_url();
            }
        },
    );
    let manifest = prop_oneof![
        1 => bytes(),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        3 => (
            proptest::option::of(json_value()),
            proptest::option::of(proptest::collection::vec(json_value(), 0..4)),
            proptest::option::of(json_value()),
        )
            .prop_map(|(id, files, columns)| {
                let mut manifest = json!({});
                if let Some(id) = id {
                    manifest["executionId"] = id;
                }
                if let Some(files) = files {
                    manifest["dataFiles"] = Value::Array(files);
                }
                if let Some(columns) = columns {
                    manifest["columns"] = columns;
                }
                manifest.to_string().into_bytes()
            }),
    ];
    fuzz(
        "CUR 2.0 / FOCUS manifests",
        2000,
        (s3_key(), manifest),
        |(key, bytes)| {
            let _ = parse_manifest(&key, &bytes);
        },
    );
}

/// A valid legacy status object: one row, `status` = `text`.
fn status_object(text: &str) -> Vec<u8> {
    use arrow_array::RecordBatch;
    use arrow_array::{ArrayRef, StringArray};
    use parquet::arrow::ArrowWriter;
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([(
        "status",
        Arc::new(StringArray::from(vec![text])) as ArrayRef,
    )])
    .expect("batch");
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    bytes
}

#[test]
fn legacy_status_objects_never_panic() {
    let ready = status_object("READY");
    assert_eq!(
        legacy_status_ready("status.parquet", ready.clone()).ok(),
        Some(true)
    );
    let corrupted = (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(move |(flips, cut)| {
            let mut bytes = ready.clone();
            for (at, byte) in flips {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        });
    let input = prop_oneof![1 => bytes(), 4 => corrupted];
    fuzz("legacy CUR status object (Parquet)", 1500, input, |bytes| {
        let _ = legacy_status_ready("status.parquet", bytes);
    });
}

/// `today` anywhere chrono can count, extremes included (the API is given the caller's clock).
fn today() -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        4 => (1_000i32..4_000, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)),
        1 => prop::sample::select(vec![NaiveDate::MIN, NaiveDate::MAX,
            NaiveDate::MIN.succ_opt().unwrap_or(NaiveDate::MIN),
            NaiveDate::MAX.pred_opt().unwrap_or(NaiveDate::MAX)]),
    ]
}

/// OpenCost `window=` values: keywords, durations, instants, in any case and with junk around them.
fn window_text() -> impl Strategy<Value = String> {
    let instant = prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|z|[+-][0-9]{2}:[0-9]{2})?",
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{1,22}",
        "-?[0-9]{0,6}",
    ]
    .boxed();
    prop_oneof![
        2 => prop::sample::select(vec!["today", "yesterday", "week", "lastweek", "month",
            "lastmonth", "TODAY", " LastMonth ", "7d", "48h", "25h", "0d", "3661d", "1d,"])
            .prop_map(str::to_string),
        2 => ("-?[0-9]{0,22}", "[dhDHmsx]?").prop_map(|(n, u)| format!("{n}{u}")),
        3 => (instant.clone(), instant, " ?, ?").prop_map(|(a, b, sep)| format!("{a}{sep}{b}")),
        1 => any::<String>(),
    ]
}

#[test]
fn windows_and_periods_never_panic() {
    fuzz(
        "OpenCost windows",
        3000,
        (window_text(), today()),
        |(text, today)| {
            if let Ok(window) = UsageWindow::parse_opencost(&text, today) {
                // Bounded: a window's periods are at most ~120,000 (chrono's range), each cheap.
                let _ = window.billing_periods();
            }
        },
    );
    let period = prop_oneof!["[-+0-9]{0,5}-[-+0-9]{0,3}", any::<String>()];
    fuzz("billing periods and days", 2000, period, |text| {
        if let Ok(period) = BillingPeriod::parse(&text) {
            let _ = UsageWindow::billing_period(period).billing_periods();
            let _ = period.label();
        }
        let _ = UsageWindow::parse_day("day", &text);
    });
}

/// A memory store serving June 2024 from a small full-grain allocation.
fn store() -> MemoryStore {
    let full = full_allocation();
    let store = MemoryStore::default();
    for (period, allocation) in split_by_period(&full).expect("splits") {
        let groups = build_snapshot(&allocation).expect("builds");
        let info = SnapshotInfo::describe(
            &allocation,
            &[],
            &groups,
            SnapshotOrigin {
                period,
                version: 1,
                run_id: "fuzz".into(),
                source: "fuzz".into(),
                computed_at: "2024-07-01T00:00:00Z".into(),
            },
        );
        store.publish(info, groups);
    }
    store
}

/// The store's allocation over June 2024 (a window, so that fixed shared amounts can be pro-rated).
fn store_allocation() -> Allocation {
    let mut full = full_allocation();
    full.window = Some(UsageWindow::billing_period(
        kubecur_shared::domain::window::BillingPeriod::parse("2024-06").expect("valid"),
    ));
    full
}

/// A small full-grain allocation of June 2024: odd namespaces and untagged cost.
fn full_allocation() -> Allocation {
    let u = UNALLOCATED;
    let row = |keys: [&str; 9], cost: f64| AllocationRow {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        allocated: keys[2] != u,
        costs: CostVector([cost; 4]),
        shared: Default::default(),
        resources: 1,
        resource_ids: Some(kubecur_shared::domain::resources::ResourceSet::from_hashes(
            [1],
        )),
        line_items: 1,
    };
    Allocation {
        flavour: Flavour::Cur2,
        window: None,
        group_by: Dimension::ALL.to_vec(),
        rows: vec![
            row(
                [
                    "2024-06-01",
                    "c",
                    "a/b",
                    "web",
                    u,
                    u,
                    u,
                    "AmazonRDS",
                    "111122223333",
                ],
                1.5,
            ),
            row(
                [
                    "2024-06-02",
                    "c",
                    "=1+2",
                    u,
                    u,
                    u,
                    u,
                    "AmazonS3",
                    "111122223333",
                ],
                2.5,
            ),
            row(
                ["2024-06-30", u, u, u, u, u, u, "AmazonEC2", "111122223333"],
                4.0,
            ),
        ],
        warnings: Vec::new(),
    }
}

/// Query strings: the API's parameter names with near-valid values, escapes and junk.
fn query_string() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        4 => prop::sample::select(vec!["window", "aggregate", "costMetric", "step", "accumulate",
            "format", "filterNamespaces", "filterClusters", "filterPods", "filterAccounts",
            "filterServices", "filterDeployments", "shareNamespaces", "shareUnallocated",
            "shareCost", "shareSplit", "shareLabels", "filterLabels", "unknown", "", "window%3D",
            "a+b"])
            .prop_map(str::to_string),
        1 => "[^&=]{0,8}",
    ];
    let value = prop_oneof![
        2 => prop::sample::select(vec!["2024-06-01T00:00:00Z,2024-07-01T00:00:00Z",
            "2024-06-01T00%3A00%3A00Z%2C2024-06-03T00%3A00%3A00Z", "1717200000,1717372800",
            "month", "lastmonth", "7d", "namespace", "namespace,pod", "day,namespace,service",
            "nothing", "listCost", "amortizedNetCost", "1d", "24h", "2d", "true", "false", "csv",
            "json", "a,,b", ",", "%", "%zz", "%C3%A9", "+", "a%2Fb", "payments", "even",
            "weighted", "1500", "-1e15", "1e16", "NaN", "inf", "", "label:team",
            "label%3Ateam,namespace", "label:", "team:payments", "team:", "aws:createdBy:ops",
            "team:a,team:b,env:prod", ":x"])
            .prop_map(str::to_string),
        1 => "[^&]{0,16}",
    ];
    proptest::collection::vec((name, value, any::<bool>()), 0..7).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(n, v, with_equals)| if with_equals { format!("{n}={v}") } else { n })
            .collect::<Vec<_>>()
            .join("&")
    })
}

#[test]
fn query_strings_and_the_api_never_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = store();
    let june = NaiveDate::from_ymd_opt(2024, 6, 15).expect("valid day");
    let input = (
        prop_oneof![3 => query_string(), 1 => any::<String>()],
        prop::sample::select(vec!["/allocation", "/status", "/", "/allocation/", "/nope"]),
        prop::sample::select(vec!["GET", "POST", "get", ""]),
    );
    fuzz(
        "query strings and the API handler",
        2000,
        input,
        |(raw, path, method)| {
            let Ok(query) = api::query_pairs(Some(&raw)) else {
                return;
            };
            // Windows far from the store's month stay cheap: days are only summed where snapshots exist.
            let request = ApiRequest {
                method: method.to_string(),
                path: path.to_string(),
                query,
            };
            let response = runtime.block_on(api::handle(&store, &request, june));
            assert!(
                response.status < 500,
                "{request:?} → {}: {}",
                response.status,
                response.body
            );
        },
    );
}

/// A share rules file (`--share-rules`, `KUBECUR_SHARE_RULES`) with up to four nodes replaced or removed.
fn rules_file() -> impl Strategy<Value = String> {
    let valid = json!({"rules": [
        {"name": "shared RDS", "select": {"service": ["AmazonRDS"], "unallocated": true},
         "target": {"namespace": ["payments", "search"]}, "split": "weighted"},
        {"name": "support", "amountPerMonth": 1500, "split": "even"},
        {"select": {"namespace": "logging"}, "split": {"percent": {"payments": 50, "search": 50}}}
    ]});
    let edits = proptest::collection::vec(
        (
            proptest::collection::vec(0usize..64, 0..6),
            proptest::option::weighted(0.8, json_value()),
        ),
        0..4,
    );
    prop_oneof![
        4 => edits.prop_map(move |edits| {
            let mut rules = valid.clone();
            for (path, replacement) in edits {
                mutate(&mut rules, &path, replacement);
            }
            rules.to_string()
        }),
        1 => any::<String>(),
    ]
}

#[test]
fn share_rules_files_never_panic_and_what_parses_applies() {
    let allocation = store_allocation();
    fuzz("share rules files", 2000, rules_file(), |text| {
        if let Ok(rules) = kubecur_shared::domain::share::ShareRules::parse_json(&text) {
            // Whatever parses applies to an allocation at its grain without losing cost.
            let Some(at_grain) = allocation.regroup(&rules.grain(&[])) else {
                return;
            };
            let before = at_grain.totals();
            let shared = rules
                .apply(&at_grain, CostMetric::ListCost)
                .expect("a windowed allocation at the rules' grain");
            let placed: f64 = shared
                .sources
                .iter()
                .filter(|s| s.line_items == 0)
                .map(|s| s.costs.get(CostMetric::ListCost))
                .sum();
            let after = shared.allocation.totals().get(CostMetric::ListCost);
            let expected = before.get(CostMetric::ListCost) + placed;
            assert!(
                (after - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                "{text}: {after} != {expected}"
            );
        }
    });
}

/// A plan over legacy columns by namespace, and the result columns Athena returns for it.
fn result_plan() -> (AllocationPlan, Vec<&'static str>) {
    let columns = ColumnSet::new([
        "line_item_usage_start_date",
        "line_item_unblended_cost",
        "line_item_product_code",
        "line_item_usage_account_id",
        "line_item_line_item_type",
        "resource_tags_user_kubernetes_namespace",
        "resource_tags_user_kubernetes_cluster",
    ]);
    let request = AllocationRequest {
        group_by: vec![Dimension::Namespace, Dimension::Service],
        ..AllocationRequest::default()
    };
    let plan = AllocationPlan::new(&columns, &request).expect("plannable");
    let header = vec![
        "namespace",
        "service",
        "allocated",
        "list_cost",
        "net_cost",
        "amortized_cost",
        "amortized_net_cost",
        "resources",
        "line_items",
        "tag_source_0",
    ];
    (plan, header)
}

/// A CSV cell: numbers Athena writes, and what it should never write.
fn result_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<f64>().prop_map(|f| f.to_string()),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        2 => prop::sample::select(vec!["", "NaN", "Infinity", "-Infinity", "1e400", "1E-400",
            "18446744073709551616", "-1", "0.1", "payments", UNALLOCATED, "\"q\"\"uoted\"",
            "\"multi\nline\"", "é", " 3 "]).prop_map(str::to_string),
        1 => "[^,\"\n]{0,8}",
    ]
}

#[test]
fn athena_result_csv_never_panics() {
    let (plan, header) = result_plan();
    let structured = (
        proptest::collection::vec(prop::sample::select(header.clone()), 0..12),
        proptest::collection::vec(proptest::collection::vec(result_cell(), 0..12), 0..6),
        prop::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(move |(mut columns, rows, newline)| {
            if columns.is_empty() {
                columns = header.clone();
            }
            let mut text = columns.join(",") + newline;
            for row in rows {
                text.push_str(&row.join(","));
                text.push_str(newline);
            }
            text.into_bytes()
        });
    let input = (
        prop_oneof![1 => bytes(), 3 => structured],
        proptest::collection::vec(1usize..64, 0..8),
    );
    fuzz(
        "Athena result CSV (CsvParser, read_allocation)",
        2500,
        input,
        |(bytes, chunks)| {
            let mut parser = CsvParser::default();
            let mut table = TableSink::default();
            let mut rest: &[u8] = &bytes;
            let mut fed = Ok(());
            for size in chunks {
                let (chunk, tail) = rest.split_at(size.min(rest.len()));
                fed = fed.and_then(|()| parser.feed(chunk, &mut table));
                rest = tail;
            }
            if fed
                .and_then(|()| parser.feed(rest, &mut table))
                .and_then(|()| parser.finish(&mut table))
                .is_ok()
            {
                let _ = read_allocation(&plan, table.0);
            }
        },
    );
}

/// Tag cells: JSON objects with any values, `NULL`, truncated objects, noise.
fn tag_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json_value().prop_map(|v| v.to_string()),
        2 => proptest::collection::btree_map(
            prop_oneof![
                prop::sample::select(vec!["kubernetes_namespace", "user:kubernetes_namespace",
                    "user_kubernetes_namespace", ""]).prop_map(str::to_string),
                ".{0,8}",
            ],
            json_value(),
            0..4,
        )
        .prop_flat_map(|map| {
            let text = Value::Object(map.into_iter().collect()).to_string();
            let len = text.len();
            (Just(text), 0..=len)
        })
        .prop_map(|(text, cut)| {
            // Sometimes cut short (on a character boundary): a truncated cell.
            let mut cut = cut;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut % 3 == 0 { text[..cut].to_string() } else { text }
        }),
        1 => prop::sample::select(vec!["NULL", "null", "None", "{}", "[]", "\"\"", " ", "{\"a\":", "\u{feff}{}"])
            .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

#[test]
fn tags_never_panic() {
    fuzz("tag JSON cells (TagCell)", 3000, tag_text(), |text| {
        let cell = TagCell::read(Some(&text));
        let _ = cell.get("kubernetes_namespace");
        let _ = cell.get("");
    });
    let spec = prop_oneof![
        2 => ("[a-zA-Z]{0,10}", "[=,]?", "[^\\x00]{0,20}").prop_map(|(c, s, k)| format!("{c}{s}{k}")),
        1 => any::<String>(),
    ];
    fuzz(
        "tag key mappings (--tag-key, KUBECUR_TAG_KEYS)",
        2000,
        proptest::collection::vec(spec, 0..4),
        |specs| {
            let _ = tag_mapping(&specs);
        },
    );
}

/// A CUR CSV header line: real column names of every flavour, repeated, quoted, mixed with junk.
fn header_line() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        4 => prop::sample::select(vec![
            "lineItem/UsageStartDate", "lineItem/UnblendedCost", "lineItem/NetUnblendedCost",
            "lineItem/ProductCode", "lineItem/UsageAccountId", "lineItem/LineItemType",
            "lineItem/ResourceId", "lineItem/Operation", "reservation/EffectiveCost",
            "savingsPlan/SavingsPlanEffectiveCost", "resourceTags/user:kubernetes_namespace",
            "resourceTags/user:Team", "resourceTags/user:team", "resourceTags/aws:eks:cluster-name",
            "resourceTags/user:a,b", "resource_tags", "line_item_usage_start_date",
            "line_item_unblended_cost", "line_item_product_code", "line_item_usage_account_id",
            "ChargePeriodStart", "EffectiveCost", "BilledCost", "ListCost", "ServiceName",
            "SubAccountId", "ResourceId", "Tags", "x_Operation", "", " ", "\"", "a\"b", "é/ü",
            "resource_tags_user_team__dup2",
        ])
        .prop_map(str::to_string),
        1 => "[^\n\r]{0,12}",
    ];
    prop_oneof![
        5 => (proptest::collection::vec((name, any::<bool>()), 0..40), any::<bool>()).prop_map(|(names, bom)| {
            let fields: Vec<String> = names
                .into_iter()
                .map(|(n, quote)| if quote { format!("\"{}\"", n.replace('"', "\"\"")) } else { n })
                .collect();
            format!("{}{}", if bom { "\u{feff}" } else { "" }, fields.join(","))
        }),
        1 => any::<String>(),
    ]
}

#[test]
fn cur_csv_headers_never_panic() {
    fuzz(
        "CUR CSV headers (split, names, flavour, plan, SQL)",
        2000,
        header_line(),
        |line| {
            let raw = parse_csv_header(&line);
            let names = canonical_names(&raw);
            assert_eq!(names.len(), raw.len());
            let columns = ColumnSet::new(names);
            let request = AllocationRequest {
                window: Some(UsageWindow::billing_period(BillingPeriod {
                    year: 2024,
                    month: 6,
                })),
                ..AllocationRequest::default()
            };
            let _ = Flavour::detect(&columns);
            if let Ok(plan) = AllocationPlan::new(&columns, &request) {
                let _ = plan.required_columns();
                let glue = TableRef::Glue {
                    database: "cur".into(),
                    table: "t".into(),
                };
                let _ = render_allocation(&plan, &glue);
            }
        },
    );
}

/// Panics the fuzzing found, kept as plain tests.
mod regressions {
    use super::*;

    #[test]
    fn lastweek_near_the_start_of_the_calendar_is_an_error_not_a_panic() {
        let result = UsageWindow::parse_opencost("lastweek", NaiveDate::MIN);
        assert!(result.is_err(), "{result:?}");
    }
}
