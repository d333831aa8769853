//! The embedded DataFusion engine over generated CUR files of every flavour and encoding, checked against
//! the Rust reference allocator (`domain::evaluate`) on the same line items.

use kubecur_shared::adapters::datafusion::DataFusionQueryEngine;
use kubecur_shared::domain::allocation::Allocation;
use kubecur_shared::domain::evaluate;
use kubecur_shared::domain::expr::LineItemValues;
use kubecur_shared::domain::plan::{AccountId, Warning};
use kubecur_shared::domain::sql::render_allocation;
use kubecur_shared::domain::tags::Concept;
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::{
    AllocationPlan, AllocationRequest, CostMetric, Dimension, Flavour, UsageWindow, UNALLOCATED,
};
use kubecur_shared::ports::{EngineError, NoProgress, QueryEngine};
use kubecur_shared::sample::SampleOutput;
use kubecur_shared::service;
use kubecur_tests::sample;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

async fn open(path: &Path) -> Result<DataFusionQueryEngine, EngineError> {
    DataFusionQueryEngine::open(&path.display().to_string(), None, Arc::new(NoProgress)).await
}

/// Opens one sample output and allocates `request` with it.
async fn allocate_sample(output: SampleOutput, request: &AllocationRequest) -> Allocation {
    let mut engine = open(&sample().path(output))
        .await
        .unwrap_or_else(|e| panic!("{output:?} opens: {e}"));
    service::allocate(&mut engine, request)
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
    let request = by_namespace();
    let mut engine = open(path)
        .await
        .unwrap_or_else(|e| panic!("{} opens: {e}", path.display()));
    assert_eq!(engine.flavour(), expected_flavour, "{}", path.display());
    let actual = service::allocate(&mut engine, &request)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected = reference(&request).await;
    let (actual, expected) = (per_key(&actual), per_key(&expected));
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{}: namespaces",
        path.display()
    );
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

const ALL_METRICS: [CostMetric; 4] = CostMetric::ALL;
// FOCUS carries ListCost, BilledCost and EffectiveCost (= amortized net); amortizedCost maps to EffectiveCost.
const FOCUS_METRICS: [CostMetric; 3] = [
    CostMetric::ListCost,
    CostMetric::NetCost,
    CostMetric::AmortizedNetCost,
];

/// One test per flavour and encoding, each against the reference allocator.
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

#[tokio::test]
async fn full_grain_allocation_reconciles_with_the_reference_total_and_leaves_untagged_cost_unallocated(
) {
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
        assert_close(
            &format!("{metric} law"),
            summary.allocated + summary.unallocated,
            summary.total,
        );
        assert!(
            summary.unallocated.abs() > 0.0,
            "{metric}: the sample has untagged cost"
        );
    }
    assert_eq!(
        actual.rows.len(),
        expected.rows.len(),
        "same number of groups"
    );
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
    let line_items: u64 = actual.rows.iter().map(|r| r.line_items).sum();
    assert_eq!(
        line_items,
        expected.rows.iter().map(|r| r.line_items).sum::<u64>()
    );
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
        let mut engine = open(&sample().path(output)).await.expect("opens");
        let with_pvc = service::allocate(&mut engine, &request)
            .await
            .expect("allocates");
        let default = service::allocate(&mut engine, &by_namespace())
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
        let mut engine = open(&sample().path(output)).await.expect("opens");
        let allocation = service::allocate(&mut engine, &by_namespace())
            .await
            .expect("allocates");
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
    assert!(
        allocation.summary(CostMetric::AmortizedNetCost).total > 0.0,
        "cost is still all there"
    );
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
}

#[tokio::test]
async fn grouped_distinct_count_is_planned_as_a_two_phase_aggregate() {
    // docs/local-engine.md#grouped-distinct-count: a cast inside the aggregate's arguments silently
    // turns the grouped COUNT(DISTINCT) into per-group hash sets (far slower, far more memory). The
    // rewrite shows as no distinct aggregate left in the physical plan.
    let request = AllocationRequest {
        window: june(),
        ..AllocationRequest::default()
    };
    let mut engine = open(&sample().path(SampleOutput::LegacyParquet))
        .await
        .expect("opens");
    let plan = AllocationPlan::new(engine.columns(), &request).expect("plannable");
    engine
        .prepare(&plan.required_columns())
        .await
        .expect("prepares");
    let sql = render_allocation(&plan, engine.dialect(), &engine.table()).expect("renders");
    let physical = engine.explain(&sql).await.expect("plans");
    assert!(
        !physical.to_lowercase().contains("count(distinct"),
        "distinct aggregate not rewritten:\n{physical}"
    );
    assert!(
        physical.matches("AggregateExec").count() >= 4,
        "expected two grouped phases:\n{physical}"
    );
}

/// Opens a directory holding `file` with `contents`; the error must mention every `needle`.
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
    let needles = ["part-00001.snappy.parquet", "not a readable Parquet file"];
    assert_open_fails(
        "part-00001.snappy.parquet",
        b"PAR1 this is not parquet",
        &needles,
    )
    .await;
}

#[tokio::test]
async fn csv_that_is_not_a_cur_is_named_as_such() {
    let needles = ["invoice.csv", "not a Cost and Usage Report"];
    assert_open_fails("invoice.csv", b"date,amount\n2024-06-01,3\n", &needles).await;
}

#[tokio::test]
async fn mixed_flavours_are_refused() {
    // The sample root holds every flavour: pointing at it is the classic mistake.
    let err = open(&sample().root)
        .await
        .err()
        .expect("mixed flavours")
        .to_string();
    assert!(err.contains("mixes CUR flavours"), "{err}");
}

#[tokio::test]
async fn malformed_cost_in_csv_is_an_error_not_a_zero() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("cur.csv"),
        "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ProductCode,lineItem/UsageAccountId\n2024-06-01T00:00:00Z,twelve,AmazonRDS,111122223333\n",
    )
    .expect("write");
    let mut engine = open(dir.path()).await.expect("opens: the header is a CUR");
    let err = service::allocate(&mut engine, &by_namespace())
        .await
        .expect_err("cannot cast")
        .to_string();
    assert!(err.contains("twelve"), "{err}");
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
            DataFusionQueryEngine::open(&path.display().to_string(), june(), Arc::new(NoProgress))
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
        let mut june_only = june_only;
        let pruned = service::allocate(&mut june_only, &by_namespace())
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
