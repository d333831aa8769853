//! Golden tests for the Athena SQL of each flavour. `UPDATE_GOLDEN=1 cargo test` rewrites the files;
//! review the diff like code. `scripts/check_athena_sql.py` parses the same files as Trino SQL.
//! The benchmark also runs the rendered Athena SQL (transpiled by sqlglot) on DuckDB and compares its
//! numbers with kubecur's.

use chrono::NaiveDate;
use kubecur_shared::domain::columns::ColumnSet;
use kubecur_shared::domain::plan::AccountId;
use kubecur_shared::domain::sql::render_allocation;
use kubecur_shared::domain::{
    AllocationPlan, AllocationRequest, Dimension, DomainError, TableRef, UsageWindow,
};
use std::path::PathBuf;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "rendered SQL differs from {}",
        path.display()
    );
}

fn june_2024() -> AllocationRequest {
    let from = NaiveDate::from_ymd_opt(2024, 6, 1).expect("valid");
    let to = NaiveDate::from_ymd_opt(2024, 7, 1).expect("valid");
    AllocationRequest {
        window: Some(UsageWindow::new(from, to).expect("valid")),
        ..AllocationRequest::default()
    }
}

fn table() -> TableRef {
    TableRef::Glue {
        database: "athenacurcfn_kubecur".into(),
        table: "2024_cur".into(),
    }
}

const CUR_BASE: [&str; 9] = [
    "line_item_usage_start_date",
    "line_item_line_item_type",
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "line_item_product_code",
    "line_item_usage_account_id",
    "line_item_resource_id",
    "line_item_operation",
    "reservation_effective_cost",
];

#[test]
fn legacy_cur_athena_sql() {
    let mut names: Vec<&str> = CUR_BASE.to_vec();
    names.extend([
        "reservation_reservation_a_r_n",
        "reservation_unused_amortized_upfront_fee_for_billing_period",
        "reservation_unused_recurring_fee",
        "savings_plan_savings_plan_effective_cost",
        "savings_plan_total_commitment_to_date",
        "savings_plan_used_commitment",
        "resource_tags_user_kubernetes_namespace",
        "resource_tags_user_kubernetes_deployment",
        "resource_tags_user_app_kubernetes_io_part_of",
        "resource_tags_user_kubernetes_cluster",
        "year",
        "month",
    ]);
    let mut request = june_2024();
    request
        .tag_mapping
        .apply_override("namespace=kubernetes_namespace,app.kubernetes.io/part-of")
        .expect("valid");
    request.accounts = vec![AccountId::parse("123456789012").expect("valid")];
    let plan = AllocationPlan::new(&ColumnSet::new(names), &request).expect("plannable");
    golden(
        "legacy_cur.athena.sql",
        &render_allocation(&plan, &table()).expect("renders"),
    );
}

#[test]
fn cur2_athena_sql() {
    let mut names: Vec<&str> = CUR_BASE.to_vec();
    names.extend([
        "reservation_reservation_arn",
        "resource_tags",
        "billing_period",
    ]);
    let mut request = june_2024();
    request.group_by = vec![Dimension::Namespace, Dimension::Service];
    let plan = AllocationPlan::new(&ColumnSet::new(names), &request).expect("plannable");
    golden(
        "cur2.athena.sql",
        &render_allocation(&plan, &table()).expect("renders"),
    );
}

/// The pipeline's query: the full grain, with each group's resource id hashes for the snapshot.
#[test]
fn cur2_snapshot_athena_sql() {
    let mut names: Vec<&str> = CUR_BASE.to_vec();
    names.extend(["resource_tags", "billing_period"]);
    let mut request = june_2024();
    request.resource_ids = true;
    let plan = AllocationPlan::new(&ColumnSet::new(names), &request).expect("plannable");
    assert_eq!(plan.group_by, Dimension::ALL.to_vec());
    golden(
        "cur2_snapshot.athena.sql",
        &render_allocation(&plan, &table()).expect("renders"),
    );
}

/// The pipeline's query with `KUBECUR_LABELS=team` and share rules that select two resources by id
/// (one with a quote in it): the label's alias, and the resource key only for those ids.
#[test]
fn cur2_labels_and_resources_athena_sql() {
    let mut names: Vec<&str> = CUR_BASE.to_vec();
    names.extend(["resource_tags", "billing_period"]);
    let mut mapping = kubecur_shared::domain::TagMapping::default();
    mapping.set_labels(vec![
        kubecur_shared::domain::Label::new("team").expect("valid")
    ]);
    mapping.set_resources(vec![
        "arn:aws:rds:eu-west-1:111122223333:db:shared-postgres".into(),
        "vol-0'quoted".into(),
    ]);
    let request = kubecur_shared::pipeline::run_request(june_2024().window, &mapping);
    let plan = AllocationPlan::new(&ColumnSet::new(names), &request).expect("plannable");
    assert_eq!(plan.group_by.last(), Some(&Dimension::Resource));
    golden(
        "cur2_labels_and_resources.athena.sql",
        &render_allocation(&plan, &table()).expect("renders"),
    );
}

#[test]
fn focus_athena_sql() {
    let names = [
        "chargeperiodstart",
        "billedcost",
        "effectivecost",
        "listcost",
        "servicename",
        "subaccountid",
        "resourceid",
        "tags",
        "x_operation",
        "billing_period",
    ];
    let mut request = june_2024();
    request.window = Some(
        UsageWindow::new(
            NaiveDate::from_ymd_opt(2024, 5, 25).expect("valid"),
            NaiveDate::from_ymd_opt(2024, 6, 8).expect("valid"),
        )
        .expect("valid"),
    );
    let plan = AllocationPlan::new(&ColumnSet::new(names), &request).expect("plannable");
    golden(
        "focus.athena.sql",
        &render_allocation(&plan, &table()).expect("renders"),
    );
}

#[test]
fn athena_sql_without_a_window_is_refused() {
    let plan = AllocationPlan::new(&ColumnSet::new(CUR_BASE), &AllocationRequest::default())
        .expect("plannable");
    assert_eq!(
        render_allocation(&plan, &table()),
        Err(DomainError::WindowRequired)
    );
}

#[test]
fn hostile_tag_keys_never_reach_sql_unescaped() {
    let mut names: Vec<&str> = CUR_BASE.to_vec();
    names.push("resource_tags");
    let mut request = june_2024();
    request
        .tag_mapping
        .apply_override("namespace=x') OR 1=1 --")
        .expect("keys may contain anything printable");
    let plan = AllocationPlan::new(&ColumnSet::new(names), &request).expect("plannable");
    let sql = render_allocation(&plan, &table()).expect("renders");
    assert!(
        sql.contains("element_at(\"resource_tags\", 'user_x_o_r_1_1')"),
        "{sql}"
    );
    let mut focus_request = june_2024();
    focus_request
        .tag_mapping
        .apply_override("namespace=x') OR 1=1 --")
        .expect("valid");
    let focus = AllocationPlan::new(
        &ColumnSet::new([
            "chargeperiodstart",
            "effectivecost",
            "billedcost",
            "servicename",
            "subaccountid",
            "tags",
        ]),
        &focus_request,
    )
    .expect("plannable");
    let sql = render_allocation(&focus, &table()).expect("renders");
    assert!(sql.contains("'x'') OR 1=1 --'"), "{sql}");
}
