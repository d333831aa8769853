//! The local engine (`adapters::native`) over generated CUR files of every flavour and encoding, checked
//! against the Rust reference allocator (`domain::evaluate`) on the same line items.

use kubecur_shared::adapters::native::NativeEngine;
use kubecur_shared::domain::allocation::Allocation;
use kubecur_shared::domain::evaluate;
use kubecur_shared::domain::expr::LineItemValues;
use kubecur_shared::domain::plan::{AccountId, Warning};
use kubecur_shared::domain::tags::Concept;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::{
    AllocationPlan, AllocationRequest, CostMetric, Dimension, Flavour, UsageWindow, UNALLOCATED,
};
use kubecur_shared::ports::{AllocationEngine, EngineError, NoProgress};
use kubecur_shared::sample::{SampleLineItem, SampleOutput};
use kubecur_shared::service;
use kubecur_tests::sample;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

async fn open(path: &Path) -> Result<NativeEngine, EngineError> {
    NativeEngine::open(&path.display().to_string(), None, Arc::new(NoProgress)).await
}

async fn allocate_sample(output: SampleOutput, request: &AllocationRequest) -> Allocation {
    let engine = open(&sample().path(output))
        .await
        .unwrap_or_else(|e| panic!("{output:?} opens: {e}"));
    service::allocate(&engine, request)
        .await
        .unwrap_or_else(|e| panic!("{output:?} allocates: {e}"))
}

fn june() -> Option<UsageWindow> {
    Some(UsageWindow::billing_period(
        BillingPeriod::parse("2024-06").expect("valid period"),
    ))
}

fn by_namespace() -> AllocationRequest {
    AllocationRequest {
        window: june(),
        group_by: vec![Dimension::Namespace],
        ..AllocationRequest::default()
    }
}

/// Per group key, the four metrics.
fn per_key(allocation: &Allocation) -> BTreeMap<Vec<String>, [f64; 4]> {
    let mut out: BTreeMap<Vec<String>, [f64; 4]> = BTreeMap::new();
    for row in &allocation.rows {
        let entry = out.entry(row.keys.clone()).or_default();
        for (slot, value) in entry.iter_mut().zip(row.costs.0) {
            *slot += value;
        }
    }
    out
}

/// The reference allocation of the sample's line items, planned on the legacy Parquet columns.
async fn reference(request: &AllocationRequest) -> Allocation {
    let engine = open(&sample().path(SampleOutput::LegacyParquet))
        .await
        .expect("legacy sample opens");
    let plan = AllocationPlan::new(engine.columns(), request).expect("plannable");
    let items = sample().line_items();
    evaluate::allocate(&plan, items.iter().map(|i| i as &dyn LineItemValues))
}

fn assert_close(context: &str, actual: f64, expected: f64) {
    let tolerance = 1e-9 * expected.abs().max(1.0) + 1e-6;
    assert!(
        (actual - expected).abs() <= tolerance,
        "{context}: got {actual}, expected {expected}"
    );
}

async fn check_output_matches_reference(
    path: &Path,
    metrics: &[CostMetric],
    expected_flavour: Flavour,
) {
    let cost_center = kubecur_shared::domain::Label::new("CostCenter").expect("valid");
    let by_cost_center = AllocationRequest {
        group_by: vec![Dimension::Namespace, Dimension::Label(cost_center)],
        ..by_namespace()
    };
    // Two resource ids of June, one tagged and one not: keyed for a share rule (`resource`).
    let items = sample().line_items();
    let in_june =
        |item: &&SampleLineItem| june().is_some_and(|w| w.contains(item.usage_start.date()));
    let ids: Vec<String> = [true, false]
        .into_iter()
        .map(|tagged| {
            items
                .iter()
                .filter(in_june)
                .find(|i| i.tags.is_empty() != tagged && !i.resource_id.trim().is_empty())
                .expect("the sample has resources, tagged and not")
                .resource_id
                .trim()
                .to_string()
        })
        .collect();
    let by_resource = AllocationRequest {
        group_by: vec![Dimension::Namespace, Dimension::Resource],
        resources: ids.clone(),
        ..by_namespace()
    };
    for request in [by_namespace(), by_cost_center, by_resource] {
        let engine = open(path)
            .await
            .unwrap_or_else(|e| panic!("{} opens: {e}", path.display()));
        assert_eq!(engine.flavour(), expected_flavour, "{}", path.display());
        let actual = service::allocate(&engine, &request)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected = reference(&request).await;
        let (actual, expected) = (per_key(&actual), per_key(&expected));
        assert_eq!(
            actual.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{}: groups by {:?}",
            path.display(),
            request.group_by
        );
        if request.group_by.contains(&Dimension::Resource) {
            for id in &ids {
                assert!(expected.keys().any(|k| k[1] == *id), "{id} is keyed");
            }
            assert!(
                expected.keys().any(|k| k[1].is_empty()),
                "other resources are ''"
            );
        } else if request.group_by.len() > 1 {
            assert!(
                expected.keys().any(|k| k[1] == "CC-1234 \"core\""),
                "the sample tags some cost with CostCenter: {:?}",
                expected.keys().collect::<Vec<_>>()
            );
        }
        for (key, costs) in &expected {
            for metric in metrics {
                assert_close(
                    &format!("{} {key:?} {metric}", path.display()),
                    actual[key][metric.index()],
                    costs[metric.index()],
                );
            }
        }
    }
}

const ALL_METRICS: [CostMetric; 4] = CostMetric::ALL;
// FOCUS carries ListCost, BilledCost and EffectiveCost (= amortized net); amortizedCost maps to EffectiveCost.
const FOCUS_METRICS: [CostMetric; 3] = [
    CostMetric::ListCost,
    CostMetric::NetCost,
    CostMetric::AmortizedNetCost,
];

macro_rules! matches_reference {
    ($($name:ident: $path:ident($output:ident), $metrics:expr, $flavour:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let path = sample().$path(SampleOutput::$output);
            check_output_matches_reference(&path, &$metrics, Flavour::$flavour).await;
        }
    )*};
}

matches_reference! {
    legacy_parquet_matches_the_reference_allocator: path(LegacyParquet), ALL_METRICS, LegacyCur;
    legacy_csv_gz_matches_the_reference_allocator: path(LegacyCsvGz), ALL_METRICS, LegacyCur;
    legacy_plain_csv_matches_the_reference_allocator: path_reencoded(LegacyCsvGz), ALL_METRICS, LegacyCur;
    cur2_parquet_matches_the_reference_allocator: path(Cur2Parquet), ALL_METRICS, Cur2;
    cur2_csv_gz_with_json_tags_matches_the_reference_allocator: path(Cur2CsvGz), ALL_METRICS, Cur2;
    cur2_plain_csv_matches_the_reference_allocator: path_reencoded(Cur2CsvGz), ALL_METRICS, Cur2;
    focus_parquet_matches_the_reference_allocator: path(FocusParquet), FOCUS_METRICS, Focus;
    focus_plain_csv_matches_the_reference_allocator: path(FocusCsv), FOCUS_METRICS, Focus;
    focus_csv_gz_matches_the_reference_allocator: path_reencoded(FocusCsv), FOCUS_METRICS, Focus;
}

/// Every row of the full grain, compared with the reference: keys, allocated flag, the four metrics, line
/// items, distinct resources and (with `resource_ids`) the resource hash sets. Stricter than the per-key
/// sums above: a grouping or counting mistake cannot hide in a total.
async fn check_full_grain_row_by_row(output: SampleOutput, resource_ids: bool) {
    let request = AllocationRequest {
        window: june(),
        resource_ids,
        ..AllocationRequest::default()
    };
    let actual = allocate_sample(output, &request).await;
    let expected = reference(&request).await;
    type Row = ([f64; 4], u64, u64, Option<Vec<u64>>);
    let index = |allocation: &Allocation| -> BTreeMap<(Vec<String>, bool), Row> {
        allocation
            .rows
            .iter()
            .map(|r| {
                let hashes = r.resource_ids.as_ref().map(|set| match set {
                    kubecur_shared::domain::resources::ResourceSet::Exact(h) => h.clone(),
                    other => panic!("a sketch for a small sample: {other:?}"),
                });
                (
                    (r.keys.clone(), r.allocated),
                    (r.costs.0, r.line_items, r.resources, hashes),
                )
            })
            .collect()
    };
    let (actual, expected) = (index(&actual), index(&expected));
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{output:?}: the same groups"
    );
    assert!(expected.len() > 100, "the full grain has many groups");
    for (key, (costs, line_items, resources, hashes)) in &expected {
        let got = &actual[key];
        for metric in CostMetric::ALL {
            assert_close(
                &format!("{output:?} {key:?} {metric}"),
                got.0[metric.index()],
                costs[metric.index()],
            );
        }
        assert_eq!(got.1, *line_items, "{output:?} {key:?} line items");
        assert_eq!(got.2, *resources, "{output:?} {key:?} resources");
        assert_eq!(&got.3, hashes, "{output:?} {key:?} resource hashes");
    }
}

#[tokio::test]
async fn full_grain_rows_match_the_reference_in_legacy_parquet() {
    check_full_grain_row_by_row(SampleOutput::LegacyParquet, false).await;
}

#[tokio::test]
async fn full_grain_rows_with_resource_hashes_match_the_reference_in_legacy_parquet() {
    check_full_grain_row_by_row(SampleOutput::LegacyParquet, true).await;
}

#[tokio::test]
async fn full_grain_rows_match_the_reference_in_legacy_csv_gz() {
    check_full_grain_row_by_row(SampleOutput::LegacyCsvGz, true).await;
}

#[tokio::test]
async fn full_grain_allocation_reconciles_and_leaves_untagged_cost_unallocated() {
    let request = AllocationRequest {
        window: june(),
        ..AllocationRequest::default()
    };
    let actual = allocate_sample(SampleOutput::LegacyParquet, &request).await;
    let expected = reference(&request).await;
    for metric in CostMetric::ALL {
        let summary = actual.summary(metric);
        assert_close(
            &format!("{metric} total"),
            summary.total,
            expected.totals().get(metric),
        );
        assert!(
            summary.unallocated.abs() > 0.0,
            "{metric}: the sample has untagged cost"
        );
    }
    let namespace = actual
        .group_by
        .iter()
        .position(|d| *d == Dimension::Namespace)
        .expect("namespace in full grain");
    let deployment = actual
        .group_by
        .iter()
        .position(|d| *d == Dimension::Deployment)
        .expect("deployment in full grain");
    assert!(
        actual
            .rows
            .iter()
            .any(|r| r.keys[namespace] == "payments" && r.keys[deployment] == UNALLOCATED),
        "partially tagged cost keeps its namespace: payments/__unallocated__"
    );
}

#[tokio::test]
async fn one_thread_and_many_threads_give_the_same_rows() {
    let request = AllocationRequest {
        window: None,
        resource_ids: true,
        ..AllocationRequest::default()
    };
    for output in [SampleOutput::Cur2Parquet, SampleOutput::FocusCsv] {
        let path = sample().path(output);
        let one = open(&path).await.expect("opens").with_threads(1);
        let four = open(&path).await.expect("opens").with_threads(4);
        let a = service::allocate(&one, &request).await.expect("allocates");
        let b = service::allocate(&four, &request).await.expect("allocates");
        assert_eq!(a.rows.len(), b.rows.len(), "{output:?}");
        for (x, y) in a.rows.iter().zip(&b.rows) {
            assert_eq!(
                (&x.keys, x.allocated, x.line_items, &x.resource_ids),
                (&y.keys, y.allocated, y.line_items, &y.resource_ids),
                "{output:?}"
            );
            for metric in CostMetric::ALL {
                assert_close(
                    &format!("{output:?} {:?} {metric}", x.keys),
                    y.costs.get(metric),
                    x.costs.get(metric),
                );
            }
        }
    }
}

/// The same files give the same figures to the last bit however the row groups were shared out among
/// threads: a float sum depends on the order its terms are added in, and a figure on a half-cent
/// boundary printed one cent or the next from run to run.
#[tokio::test]
async fn the_same_files_give_bit_identical_figures_whatever_the_threads() {
    let request = AllocationRequest {
        window: None,
        group_by: vec![Dimension::Namespace, Dimension::Service],
        ..AllocationRequest::default()
    };
    for output in [
        SampleOutput::LegacyParquet,
        SampleOutput::Cur2Parquet,
        SampleOutput::FocusCsv,
    ] {
        let path = sample().path(output);
        let figures = |allocation: &Allocation| -> Vec<(Vec<String>, bool, [u64; 4])> {
            allocation
                .rows
                .iter()
                .map(|r| (r.keys.clone(), r.allocated, r.costs.0.map(f64::to_bits)))
                .collect()
        };
        let one = open(&path).await.expect("opens").with_threads(1);
        let expected = figures(&service::allocate(&one, &request).await.expect("allocates"));
        for threads in [2, 3, 4, 8, 8, 8] {
            let many = open(&path).await.expect("opens").with_threads(threads);
            let got = figures(&service::allocate(&many, &request).await.expect("allocates"));
            assert_eq!(
                got.len(),
                expected.len(),
                "{output:?} with {threads} threads"
            );
            if let Some((a, b)) = got.iter().zip(&expected).find(|(a, b)| a != b) {
                panic!("{output:?} with {threads} threads: {a:?} but with one thread {b:?}");
            }
        }
    }
}

#[tokio::test]
async fn eks_split_cost_rows_are_excluded() {
    let request = AllocationRequest {
        window: june(),
        group_by: vec![Dimension::Service],
        ..AllocationRequest::default()
    };
    let allocation = allocate_sample(SampleOutput::LegacyParquet, &request).await;
    let items = sample().line_items();
    let june_items = items.iter().filter(|i| {
        request
            .window
            .is_some_and(|w| w.contains(i.usage_start.date()))
    });
    let split_rows = june_items
        .clone()
        .filter(|i| i.operation == "EKSPod-EC2")
        .count() as u64;
    assert!(split_rows > 0, "the sample has split-cost rows");
    let counted: u64 = allocation.rows.iter().map(|r| r.line_items).sum();
    assert_eq!(counted, june_items.count() as u64 - split_rows);
}

#[tokio::test]
async fn tag_override_reads_keys_with_dots_and_slashes() {
    let mut request = by_namespace();
    request
        .tag_mapping
        .apply_override("namespace=kubernetes_namespace,kubernetes.io/created-for/pvc/namespace")
        .expect("valid");
    for output in [
        SampleOutput::LegacyParquet,
        SampleOutput::LegacyCsvGz,
        SampleOutput::Cur2Parquet,
        SampleOutput::FocusParquet,
    ] {
        let engine = open(&sample().path(output)).await.expect("opens");
        let with_pvc = service::allocate(&engine, &request)
            .await
            .expect("allocates");
        let default = service::allocate(&engine, &by_namespace())
            .await
            .expect("allocates");
        let metric = CostMetric::AmortizedNetCost;
        assert!(
            with_pvc.summary(metric).unallocated < default.summary(metric).unallocated,
            "{output:?}: volumes tagged by the EBS CSI driver move out of __unallocated__"
        );
        assert_close(
            &format!("{output:?} total"),
            with_pvc.summary(metric).total,
            default.summary(metric).total,
        );
        assert!(
            with_pvc.warnings.is_empty(),
            "{output:?}: {:?}",
            with_pvc.warnings
        );
    }
}

#[tokio::test]
async fn unicode_tag_values_survive_every_encoding() {
    for output in [
        SampleOutput::LegacyParquet,
        SampleOutput::LegacyCsvGz,
        SampleOutput::Cur2CsvGz,
        SampleOutput::FocusCsv,
    ] {
        let allocation = allocate_sample(output, &by_namespace()).await;
        let keys: Vec<&str> = allocation.rows.iter().map(|r| r.keys[0].as_str()).collect();
        assert!(
            keys.contains(&"支付") && keys.contains(&"zahlungsverkehr-ü"),
            "{output:?}: {keys:?}"
        );
        assert!(
            !keys.contains(&"") && !keys.contains(&"   "),
            "{output:?}: blank tags are absent, not a namespace"
        );
    }
}

#[tokio::test]
async fn missing_tag_column_is_a_warning_and_the_cost_stays_unallocated() {
    let mut request = by_namespace();
    request
        .tag_mapping
        .apply_override("namespace=not_activated_yet")
        .expect("valid");
    let allocation = allocate_sample(SampleOutput::LegacyParquet, &request).await;
    assert!(allocation.warnings.iter().any(|w| matches!(w, Warning::TagMissing { concept: Concept::Namespace, key, .. } if key == "not_activated_yet")));
    assert_eq!(
        allocation
            .rows
            .iter()
            .map(|r| r.keys[0].as_str())
            .collect::<Vec<_>>(),
        vec![UNALLOCATED]
    );
    assert!(allocation.summary(CostMetric::AmortizedNetCost).total > 0.0);
}

#[tokio::test]
async fn map_tag_never_set_is_a_warning_from_the_presence_counts() {
    let mut request = by_namespace();
    request
        .tag_mapping
        .apply_override("pod=not_activated_yet")
        .expect("valid");
    let allocation = allocate_sample(SampleOutput::Cur2Parquet, &request).await;
    assert!(
        allocation.warnings.contains(&Warning::TagNeverSet {
            concept: Concept::Pod,
            key: "not_activated_yet".into()
        }),
        "{:?}",
        allocation.warnings
    );
    // The keys that are set raise no such warning (the counts are not all zero).
    assert!(
        !allocation.warnings.iter().any(|w| matches!(
            w,
            Warning::TagNeverSet {
                concept: Concept::Cluster,
                ..
            }
        )),
        "{:?}",
        allocation.warnings
    );
}

#[tokio::test]
async fn account_filter_keeps_one_account() {
    let mut request = AllocationRequest {
        window: june(),
        group_by: vec![Dimension::Account],
        ..AllocationRequest::default()
    };
    request.accounts = vec![AccountId::parse("444455556666").expect("valid")];
    let allocation = allocate_sample(SampleOutput::Cur2Parquet, &request).await;
    let accounts: Vec<&str> = allocation.rows.iter().map(|r| r.keys[0].as_str()).collect();
    assert!(
        !accounts.is_empty() && accounts.iter().all(|a| *a == "444455556666"),
        "{accounts:?}"
    );
    let expected = reference(&request).await;
    assert_close(
        "one account's net cost",
        allocation.totals().get(CostMetric::NetCost),
        expected.totals().get(CostMetric::NetCost),
    );
}

#[tokio::test]
async fn files_of_other_billing_periods_are_not_read() {
    for output in [
        SampleOutput::LegacyParquet,
        SampleOutput::LegacyCsvGz,
        SampleOutput::Cur2Parquet,
        SampleOutput::FocusCsv,
    ] {
        let path = sample().path(output);
        let all = open(&path).await.expect("opens");
        let june_only =
            NativeEngine::open(&path.display().to_string(), june(), Arc::new(NoProgress))
                .await
                .expect("opens");
        assert!(
            june_only.discovery().outside_window > 0,
            "{output:?}: May files are skipped"
        );
        assert_eq!(
            june_only.discovery().files.len() + june_only.discovery().outside_window,
            all.discovery().files.len(),
            "{output:?}"
        );
        let pruned = service::allocate(&june_only, &by_namespace())
            .await
            .expect("allocates");
        let expected = reference(&by_namespace()).await;
        assert_close(
            &format!("{output:?}"),
            pruned.totals().get(CostMetric::NetCost),
            expected.totals().get(CostMetric::NetCost),
        );
    }
}

// ---- Hand-made inputs: errors, blanks, missing columns. ----

async fn assert_open_fails(file: &str, contents: &[u8], needles: &[&str]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(file), contents).expect("write");
    let err = open(dir.path())
        .await
        .err()
        .expect("opening must fail")
        .to_string();
    for needle in needles {
        assert!(err.contains(needle), "missing `{needle}` in: {err}");
    }
}

#[tokio::test]
async fn empty_directory_is_a_clear_error() {
    assert_open_fails(
        "notes.txt",
        b"not data",
        &["no CUR data files", "notes.txt"],
    )
    .await;
}

#[tokio::test]
async fn unreadable_file_is_named() {
    assert_open_fails(
        "part-00001.snappy.parquet",
        b"PAR1 this is not parquet",
        &["part-00001.snappy.parquet", "not a readable Parquet file"],
    )
    .await;
}

#[tokio::test]
async fn csv_that_is_not_a_cur_is_named_as_such() {
    assert_open_fails(
        "invoice.csv",
        b"date,amount\n2024-06-01,3\n",
        &["invoice.csv", "not a Cost and Usage Report"],
    )
    .await;
}

#[tokio::test]
async fn mixed_flavours_are_refused() {
    let err = open(&sample().root)
        .await
        .err()
        .expect("mixed flavours")
        .to_string();
    assert!(err.contains("mixes CUR flavours"), "{err}");
}

/// Writes `files` (name, contents) into a fresh directory and allocates it by namespace, no window.
async fn allocate_files(
    files: &[(&str, &[u8])],
    request: &AllocationRequest,
) -> (tempfile::TempDir, Result<Allocation, EngineError>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).expect("write");
    }
    let result = match open(dir.path()).await {
        Ok(engine) => service::allocate(&engine, request).await,
        Err(error) => Err(error),
    };
    (dir, result)
}

fn namespace_only() -> AllocationRequest {
    AllocationRequest {
        group_by: vec![Dimension::Namespace],
        ..AllocationRequest::default()
    }
}

const LEGACY_HEADER: &str = "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ProductCode,lineItem/UsageAccountId,resourceTags/user:kubernetes_namespace";

#[tokio::test]
async fn malformed_cost_in_csv_is_an_error_naming_the_value_file_row_and_column() {
    let csv = format!("{LEGACY_HEADER}\n2024-06-01T00:00:00Z,1,AmazonRDS,111122223333,a\n2024-06-01T00:00:00Z,twelve,AmazonRDS,111122223333,a\n");
    let (_dir, result) = allocate_files(&[("cur.csv", csv.as_bytes())], &namespace_only()).await;
    let text = result.expect_err("cannot read twelve").to_string();
    for needle in [
        "twelve",
        "cur.csv",
        "data row 2",
        "line_item_unblended_cost",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in: {text}");
    }
}

#[tokio::test]
async fn malformed_usage_date_is_an_error_naming_it() {
    let csv = format!("{LEGACY_HEADER}\nyesterday,1,AmazonRDS,111122223333,a\n");
    let request = by_namespace(); // the window needs the day
    let (_dir, result) = allocate_files(&[("cur.csv", csv.as_bytes())], &request).await;
    let text = result.expect_err("not a timestamp").to_string();
    for needle in [
        "yesterday",
        "cur.csv",
        "data row 1",
        "line_item_usage_start_date",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in: {text}");
    }
}

#[tokio::test]
async fn non_finite_and_absurd_csv_costs_are_errors_naming_file_row_and_column() {
    for bad in ["NaN", "nan", "inf", "-Infinity", "1e400", "-2e15", "3.4e38"] {
        let csv = format!(
            "{LEGACY_HEADER}\n2024-06-01T00:00:00Z,1.5,AmazonRDS,111122223333,payments\n2024-06-01T00:00:00Z,2.5,AmazonRDS,111122223333,web\n2024-06-02T00:00:00Z,{bad},AmazonS3,111122223333,payments\n"
        );
        let (_dir, result) =
            allocate_files(&[("cur-00001.csv", csv.as_bytes())], &namespace_only()).await;
        let err = match result {
            Ok(allocation) => panic!("{bad}: allocated instead of failing: {:?}", allocation.rows),
            Err(err) => err,
        };
        assert!(
            matches!(err, EngineError::Input(_)),
            "{bad}: not an input error: {err:?}"
        );
        let text = err.to_string();
        for needle in [
            "cur-00001.csv",
            "data row 3",
            "line_item_unblended_cost",
            "not a finite amount",
        ] {
            assert!(
                text.contains(needle),
                "{bad}: missing `{needle}` in: {text}"
            );
        }
    }
    let csv =
        format!("{LEGACY_HEADER}\n2024-06-01T00:00:00Z,-1e15,AmazonRDS,111122223333,payments\n");
    let (_dir, result) = allocate_files(&[("cur.csv", csv.as_bytes())], &namespace_only()).await;
    let allocation = result.expect("1e15 in magnitude is allowed");
    assert_eq!(allocation.totals().get(CostMetric::ListCost), -1e15);
}

#[tokio::test]
async fn an_implausible_cost_outside_the_window_is_not_read() {
    // As the SQL engines: rows the window leaves out are never costed.
    let csv = format!(
        "{LEGACY_HEADER}\n2024-06-01T00:00:00Z,1.5,AmazonRDS,111122223333,payments\n2024-05-31T00:00:00Z,NaN,AmazonS3,111122223333,payments\n"
    );
    let (_dir, result) = allocate_files(&[("cur.csv", csv.as_bytes())], &by_namespace()).await;
    let allocation = result.expect("the NaN is in May");
    assert_eq!(allocation.totals().get(CostMetric::ListCost), 1.5);
}

fn parquet_bytes(batch: &arrow_array::RecordBatch, row_group_rows: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))
            .expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    bytes
}

const JUNE_FIRST_MS: i64 = 1_717_200_000_000; // 2024-06-01T00:00:00Z

#[tokio::test]
async fn non_finite_parquet_cost_names_the_row_group() {
    use arrow_array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
    let rows = 10;
    let mut costs = vec![1.0; rows];
    costs[7] = f64::NAN;
    let batch = arrow_array::RecordBatch::try_from_iter([
        (
            "line_item_usage_start_date",
            Arc::new(TimestampMillisecondArray::from(vec![JUNE_FIRST_MS; rows])) as ArrayRef,
        ),
        (
            "line_item_unblended_cost",
            Arc::new(Float64Array::from(costs)) as ArrayRef,
        ),
        (
            "line_item_product_code",
            Arc::new(StringArray::from(vec!["AmazonRDS"; rows])) as ArrayRef,
        ),
        (
            "line_item_usage_account_id",
            Arc::new(StringArray::from(vec!["111122223333"; rows])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let bytes = parquet_bytes(&batch, 4);
    let (_dir, result) =
        allocate_files(&[("part-00001.snappy.parquet", &bytes)], &namespace_only()).await;
    let text = result.expect_err("NaN is refused").to_string();
    for needle in [
        "part-00001.snappy.parquet",
        "row group 1",
        "row 8 of the file",
        "line_item_unblended_cost",
        "NaN",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in: {text}");
    }
}

/// A text column NULL throughout a row group arrives as a dictionary with no values: every row NULL,
/// never a panic (arrow's `normalized_keys` asserts on an empty dictionary). Found by `bench/scale.py`:
/// in a real CUR a tag column is often empty for a whole row group.
#[tokio::test]
async fn a_tag_column_null_throughout_a_row_group_is_untagged_not_a_panic() {
    use arrow_array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
    let rows = 8;
    // Row group 1 (rows 0..4) has no namespace at all; row group 2 tags every line item.
    let namespaces: Vec<Option<&str>> = (0..rows)
        .map(|i| if i < 4 { None } else { Some("payments") })
        .collect();
    let batch = arrow_array::RecordBatch::try_from_iter([
        (
            "line_item_usage_start_date",
            Arc::new(TimestampMillisecondArray::from(vec![JUNE_FIRST_MS; rows])) as ArrayRef,
        ),
        (
            "line_item_unblended_cost",
            Arc::new(Float64Array::from(vec![1.5; rows])) as ArrayRef,
        ),
        (
            "line_item_product_code",
            Arc::new(StringArray::from(vec!["AmazonRDS"; rows])) as ArrayRef,
        ),
        (
            "line_item_usage_account_id",
            Arc::new(StringArray::from(vec!["111122223333"; rows])) as ArrayRef,
        ),
        (
            "resource_tags_user_kubernetes_namespace",
            Arc::new(StringArray::from(namespaces)) as ArrayRef,
        ),
    ])
    .expect("batch");
    let bytes = parquet_bytes(&batch, 4);
    let (_dir, result) =
        allocate_files(&[("part-00001.snappy.parquet", &bytes)], &namespace_only()).await;
    let allocation = result.expect("allocates");
    let cost = |namespace: &str| -> f64 {
        allocation
            .rows
            .iter()
            .filter(|r| r.keys == [namespace])
            .map(|r| r.costs.get(CostMetric::ListCost))
            .sum()
    };
    assert_eq!(cost("payments"), 6.0, "{:?}", allocation.rows);
    assert_eq!(cost(UNALLOCATED), 6.0, "{:?}", allocation.rows);
}

#[tokio::test]
async fn blank_and_whitespace_tags_are_absent_and_never_a_group() {
    let csv = format!(
        "{LEGACY_HEADER}\n\
         2024-06-01T00:00:00Z,1,AmazonRDS,111122223333,\n\
         2024-06-01T00:00:00Z,2,AmazonRDS,111122223333,   \n\
         2024-06-01T00:00:00Z,4,AmazonRDS,111122223333,\"\t\"\n\
         2024-06-01T00:00:00Z,8,AmazonRDS,111122223333,\" payments \"\n\
         2024-06-01T00:00:00Z,16, AmazonRDS ,111122223333,payments\n"
    );
    let request = AllocationRequest {
        group_by: vec![Dimension::Namespace, Dimension::Service],
        ..AllocationRequest::default()
    };
    let (_dir, result) = allocate_files(&[("cur.csv", csv.as_bytes())], &request).await;
    let allocation = result.expect("allocates");
    let costs = per_key(&allocation);
    let key = |ns: &str| vec![ns.to_string(), "AmazonRDS".to_string()];
    assert_eq!(costs.len(), 2, "{costs:?}");
    assert_eq!(costs[&key(UNALLOCATED)][CostMetric::ListCost.index()], 7.0);
    assert_eq!(costs[&key("payments")][CostMetric::ListCost.index()], 24.0);
    assert!(allocation
        .rows
        .iter()
        .all(|r| r.allocated == (r.keys[0] != UNALLOCATED)));

    // Only blanks: the tag is set on no line item.
    let csv = format!("{LEGACY_HEADER}\n2024-06-01T00:00:00Z,1,AmazonRDS,111122223333,  \n");
    let (_dir, result) = allocate_files(&[("cur.csv", csv.as_bytes())], &namespace_only()).await;
    let allocation = result.expect("allocates");
    assert!(
        allocation.warnings.contains(&Warning::TagNeverSet {
            concept: Concept::Namespace,
            key: "kubernetes_namespace".into()
        }),
        "{:?}",
        allocation.warnings
    );
}

#[tokio::test]
async fn a_column_missing_from_some_files_reads_as_null_there() {
    use arrow_array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
    // Legacy CUR's schema changes month to month: the namespace tag column appears in one file only,
    // and the resource id column in neither (a warning, resource counts 0).
    let base = |cost: f64| -> Vec<(&'static str, ArrayRef)> {
        vec![
            (
                "line_item_usage_start_date",
                Arc::new(TimestampMillisecondArray::from(vec![JUNE_FIRST_MS; 2])) as ArrayRef,
            ),
            (
                "line_item_unblended_cost",
                Arc::new(Float64Array::from(vec![cost, cost])) as ArrayRef,
            ),
            (
                "line_item_product_code",
                Arc::new(StringArray::from(vec!["AmazonEC2"; 2])) as ArrayRef,
            ),
            (
                "line_item_usage_account_id",
                Arc::new(StringArray::from(vec!["111122223333"; 2])) as ArrayRef,
            ),
        ]
    };
    let without = arrow_array::RecordBatch::try_from_iter(base(1.0)).expect("batch");
    let mut columns = base(10.0);
    columns.push((
        "resource_tags_user_kubernetes_namespace",
        Arc::new(StringArray::from(vec![Some("payments"), None])) as ArrayRef,
    ));
    let with = arrow_array::RecordBatch::try_from_iter(columns).expect("batch");
    let (_dir, result) = allocate_files(
        &[
            ("a-00001.snappy.parquet", &parquet_bytes(&without, 1024)),
            ("b-00001.snappy.parquet", &parquet_bytes(&with, 1024)),
        ],
        &namespace_only(),
    )
    .await;
    let allocation = result.expect("allocates");
    let costs = per_key(&allocation);
    assert_eq!(
        costs[&vec!["payments".to_string()]][CostMetric::ListCost.index()],
        10.0
    );
    assert_eq!(
        costs[&vec![UNALLOCATED.to_string()]][CostMetric::ListCost.index()],
        12.0
    );
    assert!(allocation.warnings.contains(&Warning::NoResourceIdColumn));
    assert!(allocation.rows.iter().all(|r| r.resources == 0));
    assert_eq!(allocation.rows.iter().map(|r| r.line_items).sum::<u64>(), 4);
}

#[tokio::test]
async fn unreadable_focus_tags_are_untagged_and_counted_in_one_warning() {
    let csv = concat!(
        "ChargePeriodStart,BilledCost,EffectiveCost,ListCost,ServiceName,SubAccountId,ResourceId,Tags\n",
        "2024-06-01T00:00:00Z,1,1,1,Amazon RDS,111122223333,db-1,\"{\"\"kubernetes_namespace\"\":\"\"payments\"\"}\"\n",
        "2024-06-01T00:00:00Z,2,2,2,Amazon RDS,111122223333,db-2,NULL\n",
        "2024-06-01T00:00:00Z,4,4,4,Amazon RDS,111122223333,db-3,null\n",
        "2024-06-01T00:00:00Z,8,8,8,Amazon RDS,111122223333,db-4,{not json\n",
        "2024-06-01T00:00:00Z,16,16,16,Amazon RDS,111122223333,db-5,\"[\"\"a\"\"]\"\n",
        "2024-06-01T00:00:00Z,32,32,32,Amazon RDS,111122223333,db-6,\n",
        "2024-06-01T00:00:00Z,64,64,64,Amazon RDS,111122223333,db-7,\"{\"\"kubernetes_namespace\"\":{\"\"a\"\":1}}\"\n",
    );
    let (_dir, result) =
        allocate_files(&[("focus-00001.csv", csv.as_bytes())], &namespace_only()).await;
    let allocation = result.expect("unreadable tags never stop the run");
    assert_eq!(
        allocation
            .warnings
            .iter()
            .filter(|w| matches!(w, Warning::UnreadableTags { .. }))
            .collect::<Vec<_>>(),
        vec![&Warning::UnreadableTags { line_items: 5 }]
    );
    let costs = per_key(&allocation);
    assert_eq!(
        costs[&vec!["payments".to_string()]][CostMetric::NetCost.index()],
        1.0
    );
    assert_eq!(
        costs[&vec![UNALLOCATED.to_string()]][CostMetric::NetCost.index()],
        126.0
    );
    assert_eq!(
        allocation.rows.iter().map(|r| r.resources).sum::<u64>(),
        7,
        "one resource per line item"
    );
}

#[tokio::test]
async fn readable_tags_raise_no_unreadable_warning() {
    let allocation = allocate_sample(SampleOutput::FocusCsv, &by_namespace()).await;
    assert!(
        !allocation
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::UnreadableTags { .. })),
        "{:?}",
        allocation.warnings
    );
}

#[tokio::test]
async fn a_ragged_csv_row_is_an_error_naming_the_row() {
    let csv = format!("{LEGACY_HEADER}\n2024-06-01T00:00:00Z,1,AmazonRDS,111122223333,a\n2024-06-01T00:00:00Z,1\n");
    let (_dir, result) = allocate_files(&[("cur.csv", csv.as_bytes())], &namespace_only()).await;
    let text = result.expect_err("a short row").to_string();
    assert!(
        text.contains("cur.csv") && text.contains("data row 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_truncated_gzip_csv_is_an_error_not_a_partial_result() {
    let mut csv = String::from(LEGACY_HEADER);
    for i in 0..5000 {
        csv.push_str(&format!(
            "\n2024-06-01T00:00:00Z,{i},AmazonRDS,111122223333,ns-{i}"
        ));
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(csv.as_bytes()).expect("gzip");
    let mut gz = encoder.finish().expect("gzip");
    gz.truncate(gz.len() / 2);
    let (_dir, result) = allocate_files(&[("cur-00001.csv.gz", &gz)], &namespace_only()).await;
    let text = result.expect_err("truncated").to_string();
    assert!(text.contains("cur-00001.csv.gz"), "{text}");
}

#[tokio::test]
async fn delivery_markers_beside_the_data_are_skipped() {
    // The legacy sample has a status Parquet file, a crawler template and the access test object.
    let engine = open(&sample().path(SampleOutput::LegacyParquet))
        .await
        .expect("opens");
    assert!(engine
        .discovery()
        .files
        .iter()
        .all(|f| !f.url.contains("cost_and_usage_data_status")));
    assert!(
        engine.discovery().skipped_unknown.is_empty(),
        "{:?}",
        engine.discovery().skipped_unknown
    );
}

#[tokio::test]
async fn twenty_thousand_copies_of_one_header_are_all_kept() {
    let copies = 20_000;
    let mut header = String::from("lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ProductCode,lineItem/UsageAccountId");
    let mut row = String::from("2024-06-01T00:00:00Z,2.5,AmazonRDS,111122223333");
    for i in 0..copies {
        header.push_str(",resourceTags/user:kubernetes_namespace");
        // The last copy holds the value: a merged tag is read from whichever copy carries it.
        row.push(',');
        if i == copies - 1 {
            row.push_str("payments");
        }
    }
    let csv = format!("{header}\n{row}\n");
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("cur.csv"), csv).expect("write");
    let engine = open(dir.path()).await.expect("opens");
    let names = engine.columns().names();
    assert_eq!(names.len(), 4 + copies);
    let distinct: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len());
    assert!(names.contains(&format!(
        "resource_tags_user_kubernetes_namespace__dup{copies}"
    )));
    let allocation = service::allocate(&engine, &by_namespace())
        .await
        .expect("allocates");
    assert_eq!(allocation.totals().get(CostMetric::ListCost), 2.5);
    assert!(
        allocation.rows.iter().any(|r| r.keys == ["payments"]),
        "{:?}",
        allocation.rows
    );
}

/// Progress that keeps the phases it is told.
#[derive(Default)]
struct Phases(std::sync::Mutex<Vec<String>>);

impl kubecur_shared::ports::Progress for Phases {
    fn phase(&self, message: &str) {
        self.0
            .lock()
            .expect("not poisoned")
            .push(message.to_string());
    }
}

type FullRow = (Vec<String>, bool, [u64; 4], u64, u64, Option<String>);

/// Every row with its figures' bits, in key order.
fn full_rows(allocation: &Allocation) -> Vec<FullRow> {
    let mut rows: Vec<FullRow> = allocation
        .rows
        .iter()
        .map(|r| {
            (
                r.keys.clone(),
                r.allocated,
                r.costs.0.map(f64::to_bits),
                r.line_items,
                r.resources,
                r.resource_ids.as_ref().map(|set| format!("{set:?}")),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    rows
}

/// Issue 12 (scale): with more groups than a pass may hold, the engine reads the files in passes, each
/// for the groups of a range of key hashes. Every group must come out once, whole: the same rows, to
/// the bit, as one pass, whatever the limit, the threads, the flavour and the encoding.
#[tokio::test]
async fn more_groups_than_a_pass_holds_are_allocated_in_passes_with_the_same_rows() {
    let request = AllocationRequest {
        window: None,
        resource_ids: true,
        ..AllocationRequest::default()
    };
    for output in [
        SampleOutput::LegacyParquet,
        SampleOutput::Cur2Parquet,
        SampleOutput::FocusCsv,
    ] {
        let path = sample().path(output);
        let whole = service::allocate(&open(&path).await.expect("opens"), &request)
            .await
            .expect("allocates");
        let expected = full_rows(&whole);
        assert!(expected.len() > 100, "{output:?}: many groups");
        let n = expected.len();
        for (limit, threads) in [((n / 40).max(2), 1), (n / 7, 4), (n / 3, 3)] {
            let phases = Arc::new(Phases::default());
            let engine = NativeEngine::open(&path.display().to_string(), None, phases.clone())
                .await
                .expect("opens")
                .with_threads(threads)
                .with_group_limit(limit);
            let parts = service::allocate(&engine, &request)
                .await
                .expect("allocates");
            let passes = phases
                .0
                .lock()
                .expect("not poisoned")
                .iter()
                .filter(|p| p.starts_with("pass "))
                .count();
            assert!(
                passes >= 1,
                "{output:?} limit {limit}: more than one pass for {} groups",
                expected.len()
            );
            assert_eq!(
                full_rows(&parts),
                expected,
                "{output:?}, at most {limit} groups a pass, {threads} threads"
            );
            assert_eq!(parts.warnings, whole.warnings, "{output:?} limit {limit}");
        }
    }
}

/// The display path (`kubecur allocate` without sharing): rows merged as they arrive, sorted in runs
/// kept in temporary files and merged back, give the display rows of the allocation held whole, in
/// the same order, and the same summary.
#[tokio::test]
async fn display_rows_from_passes_and_runs_on_disk_are_those_of_the_whole_allocation() {
    use kubecur_shared::adapters::spill::DiskRuns;
    use kubecur_shared::service::DisplayAllocation;
    for (output, group_by) in [
        (SampleOutput::LegacyParquet, Vec::new()),
        (
            SampleOutput::FocusCsv,
            vec![Dimension::Service, Dimension::Deployment],
        ),
        (SampleOutput::Cur2Parquet, vec![Dimension::Day]),
    ] {
        let path = sample().path(output);
        let request = AllocationRequest {
            window: None,
            resource_ids: !group_by.is_empty() && !group_by.contains(&Dimension::Namespace),
            group_by,
            ..AllocationRequest::default()
        };
        let metric = CostMetric::NetCost;
        let whole = service::allocate(&open(&path).await.expect("opens"), &request)
            .await
            .expect("allocates");
        let summary = whole.summary(metric);
        let expected = whole.display_rows(metric);
        let n = whole.rows.len();
        for (limit, run_rows) in [
            (usize::MAX, usize::MAX),
            ((n / 25).max(2), 2),
            (n / 4, 1),
            (n / 2, 17),
        ] {
            let engine = open(&path).await.expect("opens").with_group_limit(limit);
            let display = service::allocate_for_display(
                &engine,
                &request,
                metric,
                Box::new(DiskRuns::new(None)),
                run_rows,
            )
            .await
            .expect("allocates");
            let got_summary = display.summary(metric);
            assert_eq!(
                display.about.warnings, whole.warnings,
                "{output:?} {limit}/{run_rows}"
            );
            let rows: Vec<_> = display
                .into_parts()
                .1
                .collect::<Result<_, _>>()
                .expect("runs read back");
            assert_eq!(rows.len(), expected.len(), "{output:?} {limit}/{run_rows}");
            for (got, want) in rows.iter().zip(&expected) {
                assert_eq!(
                    (&got.keys, got.allocated, got.costs.0.map(f64::to_bits)),
                    (&want.keys, want.allocated, want.costs.0.map(f64::to_bits)),
                    "{output:?} {limit}/{run_rows}"
                );
                assert_eq!(
                    (got.resources, got.line_items),
                    (want.resources, want.line_items),
                    "{output:?} {:?}",
                    got.keys
                );
            }
            assert_eq!(
                (
                    got_summary.rows,
                    got_summary.line_items,
                    got_summary.warnings
                ),
                (summary.rows, summary.line_items, summary.warnings),
                "{output:?} {limit}/{run_rows}"
            );
            assert_close(
                &format!("{output:?} total"),
                got_summary.total,
                summary.total,
            );
            assert_close(
                &format!("{output:?} allocated"),
                got_summary.allocated,
                summary.allocated,
            );
            if limit == usize::MAX {
                assert_eq!(got_summary, summary, "one pass: the same sums to the bit");
            }
        }
        // Held whole, the display allocation is the same as well.
        let held = DisplayAllocation::from_allocation(whole, metric);
        assert_eq!(held.summary(metric), summary);
    }
}
