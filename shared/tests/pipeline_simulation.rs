//! The pipeline's use cases (ingest, writer, reconciler) over the in-memory ports, with faults
//! injected: one test per fault found in the pipeline (each would fail on the code before its fix),
//! then a deterministic simulation of thousands of generated schedules (deliveries, events delivered
//! any number of times in any order, crashes before and after every external call, throttling,
//! failed and cancelled queries, non-finite figures), checked against the pipeline's invariants.

use kubecur_shared::adapters::memory::{
    Answer, FaultPlan, Faulty, MemoryAthena, MemoryCatalog, MemoryObjects, Strike,
};
use kubecur_shared::api::{self, ApiRequest, MemoryStore};
use kubecur_shared::config::IngestConfig;
use kubecur_shared::domain::plan::Presence;
use kubecur_shared::domain::run::{parse_query_marker, Health, RunState};
use kubecur_shared::domain::snapshot::Level;
use kubecur_shared::domain::sql::{
    ALLOCATED_COLUMN, LINE_ITEMS_COLUMN, RESOURCE_HASHES_COLUMN, TAG_SOURCE_COLUMN_PREFIX,
};
use kubecur_shared::domain::window::BillingPeriod;
use kubecur_shared::domain::{CostMetric, Dimension, TagMapping};
use kubecur_shared::pipeline::ingest::{Ingest, IngestOutcome, Signal};
use kubecur_shared::pipeline::reconcile::{ReconcileConfig, Reconciler};
use kubecur_shared::pipeline::writer::{QueryEvent, Writer, WriterOutcome};
use kubecur_shared::pipeline::{run_plan, PipelineError};
use kubecur_shared::ports::pipeline::{
    Clock, ErrorKind, ManualClock, QueryRunner, QueryState, RunStore, TableInfo,
};
use kubecur_shared::ports::{Cell, PeriodStatus, ResultTable, SnapshotReader, StoreError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const BUCKET: &str = "cur-bucket";
const WORKGROUP: &str = "kubecur";
const EXPORT_ROOT: &str = "cur/kubecur-export";
const REPORT_ROOT: &str = "cur/kubecur-report";
const HOUR: i64 = 3_600_000;
/// 2024-06-20T00:00:00Z: every delivery of a schedule is in June (legacy: the month of the signal).
const BASE: i64 = 1_718_841_600_000;

fn june() -> BillingPeriod {
    BillingPeriod {
        year: 2024,
        month: 6,
    }
}

fn delivery_time(index: usize) -> i64 {
    BASE + index as i64 * HOUR
}

/// How a delivery's allocation query ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeds,
    Fails,
    IsCancelled,
    /// Succeeds with a NaN cost in its result.
    NonFinite,
}

const CUR2_COLUMNS: [&str; 22] = [
    "line_item_usage_start_date",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_account_id",
    "line_item_resource_id",
    "line_item_operation",
    "reservation_reservation_a_r_n",
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "reservation_effective_cost",
    "reservation_net_effective_cost",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_net_savings_plan_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_net_unused_recurring_fee",
    "resource_tags_user_kubernetes_namespace",
    "resource_tags_user_kubernetes_deployment",
    "resource_tags_user_kubernetes_pod",
    "resource_tags_user_kubernetes_cluster",
];

fn table(legacy: bool) -> TableInfo {
    let mut columns: Vec<String> = CUR2_COLUMNS.iter().map(|c| c.to_string()).collect();
    let (partition_keys, location) = if legacy {
        (
            vec!["year".to_string(), "month".to_string()],
            format!("s3://{BUCKET}/{REPORT_ROOT}/kubecur-report/"),
        )
    } else {
        (
            vec!["billing_period".to_string()],
            format!("s3://{BUCKET}/{EXPORT_ROOT}/data/"),
        )
    };
    columns.extend(partition_keys.iter().cloned());
    TableInfo {
        columns,
        partition_keys,
        location: Some(location),
    }
}

/// The allocation query's result for delivery `index`: three groups whose costs all encode the
/// delivery (`index * 1000 + row`), so a reader can tell which delivery a figure came from.
fn result(columns: &[String], index: usize, non_finite: bool) -> ResultTable {
    let plan = run_plan(columns, june(), &TagMapping::default()).expect("plannable");
    let mut names: Vec<String> = Dimension::ALL
        .iter()
        .map(|d| d.name().to_string())
        .collect();
    names.extend(CostMetric::ALL.iter().map(|m| m.sql_alias().to_string()));
    names.extend([ALLOCATED_COLUMN, RESOURCE_HASHES_COLUMN, LINE_ITEMS_COLUMN].map(String::from));
    for presence in plan.presence() {
        if let Presence::Counted(n) = presence {
            names.push(format!("{TAG_SOURCE_COLUMN_PREFIX}{n}"));
        }
    }
    let text = |s: &str| Cell::Text(s.to_string());
    let rows = ["payments", "search", "__unallocated__"]
        .iter()
        .enumerate()
        .map(|(row, namespace)| {
            let mut cells = vec![
                text(&format!("2024-06-0{}", row + 1)),
                text("prod"),
                text(namespace),
            ];
            cells.extend((0..4).map(|_| text("__unallocated__")));
            cells.extend([text("AmazonRDS"), text("111122223333")]);
            let cost = (index * 1000 + row) as f64;
            for m in 0..4 {
                cells.push(if non_finite && row == 1 && m == 3 {
                    text("NaN")
                } else {
                    text(&cost.to_string())
                });
            }
            cells.push(text(if *namespace == "__unallocated__" {
                "0"
            } else {
                "1"
            }));
            // One resource per group, as the query's space-separated 16-hex-digit hashes.
            cells.push(text(&format!("{:016x}", row + 1)));
            cells.push(text("2"));
            while cells.len() < names.len() {
                cells.push(text("2"));
            }
            cells
        })
        .collect();
    ResultTable {
        columns: names,
        rows,
    }
}

/// The delivery a run id names: `exec-<i>` (export) or `<etag>@<LastModified>` (legacy).
fn delivery_of(run_id: &str) -> Option<usize> {
    let identity = run_id.rsplit('#').next()?;
    if let Some(i) = identity.strip_prefix("exec-") {
        return i.parse().ok();
    }
    let ms: i64 = identity.rsplit_once('@')?.1.parse().ok()?;
    usize::try_from((ms - BASE) / HOUR).ok()
}

type FaultyIngest =
    Ingest<Faulty<MemoryStore>, Faulty<MemoryAthena>, Faulty<MemoryCatalog>, Faulty<MemoryObjects>>;
type FaultyWriter = Writer<Faulty<MemoryStore>, Faulty<MemoryAthena>, Faulty<MemoryObjects>>;

/// One AWS account in memory, every port behind one fault plan.
struct World {
    legacy: bool,
    store: MemoryStore,
    objects: MemoryObjects,
    athena: MemoryAthena,
    table: TableInfo,
    clock: Arc<ManualClock>,
    plan: Arc<FaultPlan>,
    outcomes: Arc<Mutex<BTreeMap<usize, Outcome>>>,
    /// Whether the partition DDL fails.
    ddl_fails: Arc<Mutex<bool>>,
    max_result_rows: usize,
}

impl World {
    fn new(legacy: bool) -> World {
        let objects = MemoryObjects::default();
        let table = table(legacy);
        let outcomes: Arc<Mutex<BTreeMap<usize, Outcome>>> = Arc::default();
        let ddl_fails: Arc<Mutex<bool>> = Arc::default();
        let answer = {
            let outcomes = outcomes.clone();
            let ddl_fails = ddl_fails.clone();
            let columns = table.columns.clone();
            move |sql: &str| -> Answer {
                let Some((_, run_id)) = parse_query_marker(sql) else {
                    if *ddl_fails.lock().expect("lock") {
                        return Err((
                            QueryState::Failed,
                            "AccessDeniedException: no s3:ListBucket".into(),
                        ));
                    }
                    return Ok(ResultTable::default());
                };
                let index = delivery_of(&run_id).expect("a simulated delivery");
                let outcome = outcomes
                    .lock()
                    .expect("lock")
                    .get(&index)
                    .copied()
                    .unwrap_or(Outcome::Succeeds);
                match outcome {
                    Outcome::Succeeds => Ok(result(&columns, index, false)),
                    Outcome::NonFinite => Ok(result(&columns, index, true)),
                    Outcome::Fails => Err((
                        QueryState::Failed,
                        "HIVE_BAD_DATA: simulated failure".into(),
                    )),
                    Outcome::IsCancelled => {
                        Err((QueryState::Cancelled, "Query cancelled by user".into()))
                    }
                }
            }
        };
        World {
            legacy,
            store: MemoryStore::default(),
            athena: MemoryAthena::new(WORKGROUP, objects.clone(), Arc::new(answer)),
            objects,
            table,
            clock: Arc::new(ManualClock::at(BASE)),
            plan: Arc::default(),
            outcomes,
            ddl_fails,
            max_result_rows: 1_000,
        }
    }

    fn faulty<T>(&self, inner: T) -> Faulty<T> {
        Faulty {
            inner,
            plan: self.plan.clone(),
        }
    }

    fn ingest(&self) -> FaultyIngest {
        Ingest {
            store: self.faulty(self.store.clone()),
            queries: self.faulty(self.athena.clone()),
            catalog: self.faulty(MemoryCatalog(self.table.clone())),
            objects: self.faulty(self.objects.clone()),
            config: IngestConfig::from_lookup(|name| {
                Some(
                    match name {
                        "KUBECUR_TABLE" => "kubecur",
                        "KUBECUR_ATHENA_WORKGROUP" => WORKGROUP,
                        "KUBECUR_ATHENA_DATABASE" => "cur",
                        "KUBECUR_ATHENA_TABLE" => "cur_table",
                        _ => return None,
                    }
                    .to_string(),
                )
            })
            .expect("valid configuration"),
            clock: self.clock.clone(),
        }
    }

    fn writer(&self) -> FaultyWriter {
        let mut writer = Writer::new(
            self.faulty(self.store.clone()),
            self.faulty(self.athena.clone()),
            self.faulty(self.objects.clone()),
            self.clock.clone(),
        );
        writer.max_result_rows = self.max_result_rows;
        writer
    }

    fn reconciler(
        &self,
    ) -> Reconciler<
        Faulty<MemoryStore>,
        Faulty<MemoryAthena>,
        Faulty<MemoryCatalog>,
        Faulty<MemoryObjects>,
    > {
        Reconciler {
            ingest: self.ingest(),
            writer: self.writer(),
            config: ReconcileConfig::default(),
        }
    }

    fn signal_key(&self) -> String {
        if self.legacy {
            format!("{REPORT_ROOT}/cost_and_usage_data_status/cost_and_usage_data_status.parquet")
        } else {
            format!("{EXPORT_ROOT}/metadata/BILLING_PERIOD=2024-06/kubecur-export-Manifest.json")
        }
    }

    /// AWS delivers June again (delivery `index`, at its time): a new manifest, or the legacy status
    /// object rewritten with identical bytes. Returns the S3 event of it.
    fn deliver(&self, index: usize, outcome: Outcome) -> Signal {
        let at = delivery_time(index);
        // The clock never goes back (a run's age must be measurable); the object is written at `at`.
        self.clock.set(self.clock.now_ms().max(at));
        self.outcomes.lock().expect("lock").insert(index, outcome);
        let bytes = if self.legacy {
            b"READY".to_vec()
        } else {
            serde_json::json!({ "executionId": format!("exec-{index}"), "dataFiles": [] })
                .to_string()
                .into_bytes()
        };
        self.objects.put(BUCKET, &self.signal_key(), bytes, at);
        Signal {
            bucket: BUCKET.into(),
            key: self.signal_key(),
            etag: None,
            event_time_ms: at + 250,
        }
    }

    async fn query_event(&self, query_id: &str) -> QueryEvent {
        let status = self.athena.status(query_id).await.expect("known query");
        QueryEvent {
            query_id: query_id.to_string(),
            state: match status.state {
                QueryState::Running => "RUNNING",
                QueryState::Succeeded => "SUCCEEDED",
                QueryState::Failed => "FAILED",
                QueryState::Cancelled => "CANCELLED",
            }
            .to_string(),
            workgroup: WORKGROUP.to_string(),
        }
    }

    /// The allocation query of a run, by delivery.
    fn allocation_queries(&self) -> Vec<String> {
        self.athena.query_ids()
    }

    async fn pointer(&self) -> Option<PeriodStatus> {
        self.store
            .pointers(&[june()])
            .await
            .expect("readable")
            .into_iter()
            .next()
    }

    async fn health(&self) -> Health {
        let pointer = self.pointer().await;
        Health::judge(
            pointer
                .as_ref()
                .and_then(|p| p.serving.as_ref())
                .map(|s| s.version),
            pointer.as_ref().and_then(|p| p.latest.as_ref()),
            pointer
                .as_ref()
                .and_then(|p| p.last_failure.as_ref())
                .map(|f| (f.run_id.as_str(), f.reason.as_str())),
        )
    }

    async fn status_body(&self) -> serde_json::Value {
        let response = api::handle(
            &self.store,
            &ApiRequest {
                method: "GET".into(),
                path: "/status".into(),
                query: vec![],
            },
            chrono::NaiveDate::from_ymd_opt(2024, 6, 30).expect("valid"),
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.body);
        serde_json::from_str(&response.body).expect("JSON")
    }

    async fn serving_delivery(&self) -> Option<usize> {
        let serving = self.pointer().await?.serving?;
        delivery_of(&serving.run_id)
    }

    /// What a reader of the API sees for June: the delivery every figure comes from (all must agree),
    /// or `None` when nothing serves.
    async fn read_june(&self) -> Result<Option<usize>, String> {
        let response = api::handle(
            &self.store,
            &ApiRequest {
                method: "GET".into(),
                path: "/allocation".into(),
                query: vec![
                    (
                        "window".into(),
                        "2024-06-01T00:00:00Z,2024-07-01T00:00:00Z".into(),
                    ),
                    ("aggregate".into(), "namespace".into()),
                ],
            },
            chrono::NaiveDate::from_ymd_opt(2024, 6, 30).expect("valid"),
        )
        .await;
        if response.status != 200 {
            return Err(format!(
                "/allocation answered {}: {}",
                response.status, response.body
            ));
        }
        let body: serde_json::Value =
            serde_json::from_str(&response.body).map_err(|e| e.to_string())?;
        let Some(set) = body["data"][0].as_object() else {
            return Ok(None);
        };
        if set.is_empty() {
            return Ok(None);
        }
        let mut deliveries = BTreeSet::new();
        for (name, entry) in set {
            let cost = entry["totalCost"]
                .as_f64()
                .ok_or_else(|| format!("{name}: no cost in {body}"))?;
            deliveries.insert((cost / 1000.0).floor() as usize);
        }
        if deliveries.len() != 1 {
            return Err(format!("a mix of deliveries {deliveries:?} in {body}"));
        }
        Ok(deliveries.into_iter().next())
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

async fn started(world: &World, signal: &Signal) -> String {
    let outcomes = world.ingest().handle(signal).await.expect("ingested");
    outcomes
        .into_iter()
        .find_map(|o| match o {
            IngestOutcome::Started { query_id, .. } => Some(query_id),
            _ => None,
        })
        .expect("a query started")
}

async fn write(world: &World, query_id: &str) -> Result<WriterOutcome, PipelineError> {
    let event = world.query_event(query_id).await;
    world.writer().handle(&event).await
}

async fn deliver_and_publish(world: &World, index: usize) {
    let signal = world.deliver(index, Outcome::Succeeds);
    let query = started(world, &signal).await;
    let outcome = write(world, &query).await.expect("written");
    assert!(
        matches!(outcome, WriterOutcome::Published { .. }),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// One test per fault.
// ---------------------------------------------------------------------------------------------

/// The ingest wrote the query index after `StartQueryExecution`; when it died in between (or the
/// writer's event came first), the writer answered `NotOurs` and the run stayed QUERYING forever.
#[test]
fn a_query_without_its_index_is_still_written() {
    block_on(async {
        let world = World::new(false);
        let signal = world.deliver(1, Outcome::Succeeds);
        world
            .plan
            .arm_named(Some(("indexing a query", Strike::Before)));
        let err = world.ingest().handle(&signal).await.expect_err("died");
        assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
        world.plan.arm_named(None);
        // The query ran; its event reaches the writer before any retry of the ingest.
        let query = world
            .allocation_queries()
            .into_iter()
            .last()
            .expect("the query started");
        let outcome = write(&world, &query).await.expect("written");
        assert!(
            matches!(outcome, WriterOutcome::Published { .. }),
            "{outcome:?}"
        );
        assert_eq!(world.serving_delivery().await, Some(1));
        // Lambda retries the ingest: the same query (same token), nothing new starts.
        let before = world.athena.started();
        let outcomes = world.ingest().handle(&signal).await.expect("retried");
        assert!(
            matches!(
                &outcomes[0],
                IngestOutcome::Duplicate {
                    state: RunState::Serving,
                    ..
                }
            ),
            "{outcomes:?}"
        );
        assert_eq!(world.athena.started(), before);
    });
}

/// Legacy delivery identity was the status object's ETag: AWS rewriting identical bytes made every
/// later delivery of the month a `Duplicate`.
#[test]
fn a_legacy_status_rewritten_with_identical_bytes_is_a_new_delivery() {
    block_on(async {
        let world = World::new(true);
        deliver_and_publish(&world, 1).await;
        let signal = world.deliver(2, Outcome::Succeeds);
        let outcomes = world.ingest().handle(&signal).await.expect("ingested");
        let Some(IngestOutcome::Started { query_id, .. }) = outcomes.last() else {
            panic!("identical bytes, new delivery: {outcomes:?}");
        };
        write(&world, query_id).await.expect("written");
        assert_eq!(world.serving_delivery().await, Some(2));
        let serving = world
            .pointer()
            .await
            .and_then(|p| p.serving)
            .expect("serving");
        assert_eq!(serving.version, delivery_time(2));
    });
}

/// `fail()` marked the run FAILED before the pointer recorded the failure: when the second write
/// failed, the retry saw a final run and `/status` never showed the failure.
#[test]
fn a_failure_shows_on_status_even_when_recording_it_fails_once() {
    block_on(async {
        let world = World::new(false);
        deliver_and_publish(&world, 1).await;
        let signal = world.deliver(2, Outcome::Fails);
        let query = started(&world, &signal).await;
        world
            .plan
            .arm_named(Some(("recording a failure", Strike::Before)));
        assert!(write(&world, &query).await.is_err());
        world.plan.arm_named(None);
        let outcome = write(&world, &query).await.expect("retried");
        assert!(
            matches!(outcome, WriterOutcome::Failed { .. }),
            "{outcome:?}"
        );
        let health = world.health().await;
        assert!(
            matches!(&health, Health::Failed(why) if why.contains("simulated failure")),
            "{health:?}"
        );
        assert_eq!(
            world.serving_delivery().await,
            Some(1),
            "the old snapshot serves"
        );
        let body = world.status_body().await;
        assert!(
            body["data"][0]["health"]
                .as_str()
                .is_some_and(|h| h.starts_with("failed (") && h.contains(&query)),
            "{body}"
        );
    });
}

/// When the pointer flip succeeded and expiring the old snapshot failed, the retry saw "already
/// serving" and the replaced items never got a TTL.
#[test]
fn the_replaced_snapshot_expires_even_when_the_writer_dies_after_the_flip() {
    block_on(async {
        let world = World::new(false);
        deliver_and_publish(&world, 1).await;
        let signal = world.deliver(2, Outcome::Succeeds);
        let query = started(&world, &signal).await;
        world
            .plan
            .arm_named(Some(("expiring a snapshot", Strike::Before)));
        assert!(write(&world, &query).await.is_err());
        world.plan.arm_named(None);
        assert_eq!(world.serving_delivery().await, Some(2), "the flip happened");
        write(&world, &query).await.expect("retried");
        let versions = world.store.stored_versions(june());
        let old = versions
            .iter()
            .find(|(v, _)| *v == delivery_time(1))
            .expect("the first snapshot's items");
        assert!(
            old.1.is_some(),
            "replaced snapshot without a TTL: {versions:?}"
        );
        let new = versions
            .iter()
            .find(|(v, _)| *v == delivery_time(2))
            .expect("the serving snapshot's items");
        assert_eq!(new.1, None, "the serving snapshot must not expire");
    });
}

/// Partition DDL failures only reached the failure queue; the run stayed CLAIMED.
#[test]
fn a_failed_partition_ddl_fails_the_run_with_the_reason() {
    block_on(async {
        let world = World::new(false);
        *world.ddl_fails.lock().expect("lock") = true;
        let signal = world.deliver(1, Outcome::Succeeds);
        let outcomes = world.ingest().handle(&signal).await.expect("handled");
        assert!(
            matches!(&outcomes[0], IngestOutcome::Failed { reason, .. } if reason.contains("adding partition")),
            "{outcomes:?}"
        );
        let health = world.health().await;
        assert!(
            matches!(&health, Health::Failed(why) if why.contains("AccessDeniedException")),
            "{health:?}"
        );
        let runs = world.store.runs(june()).await.expect("runs");
        assert_eq!(runs[0].state, RunState::Failed);
    });
}

/// A result larger than the writer takes only reached the failure queue; the run stayed QUERYING.
#[test]
fn a_result_too_large_for_the_writer_fails_the_run() {
    block_on(async {
        let mut world = World::new(false);
        world.max_result_rows = 2;
        let signal = world.deliver(1, Outcome::Succeeds);
        let query = started(&world, &signal).await;
        let outcome = write(&world, &query).await.expect("handled");
        assert!(
            matches!(&outcome, WriterOutcome::Failed { reason, .. } if reason.contains("more than 2 rows")),
            "{outcome:?}"
        );
        assert!(matches!(world.health().await, Health::Failed(_)));
    });
}

/// A NaN in a result was written as JSON `null` and every read of the period answered 500.
#[test]
fn a_non_finite_figure_fails_the_run_naming_column_and_row_and_the_old_snapshot_serves() {
    block_on(async {
        let world = World::new(false);
        deliver_and_publish(&world, 1).await;
        let signal = world.deliver(2, Outcome::NonFinite);
        let query = started(&world, &signal).await;
        let outcome = write(&world, &query).await.expect("handled");
        let WriterOutcome::Failed { reason, .. } = &outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            reason.contains("amortized_net_cost")
                || reason.contains(CostMetric::ALL[3].sql_alias()),
            "{reason}"
        );
        assert!(reason.contains("row 2"), "{reason}");
        assert_eq!(world.read_june().await, Ok(Some(1)));
        let body = world.status_body().await;
        assert!(
            body["data"][0]["health"]
                .as_str()
                .is_some_and(|h| h.starts_with("failed (") && h.contains("NaN")),
            "{body}"
        );
    });
}

/// The ingest read any object named like a signal wholly into memory before checking it belonged
/// to its table.
#[test]
fn the_ingest_checks_the_table_before_reading_and_bounds_what_it_reads() {
    block_on(async {
        let world = World::new(false);
        let foreign = Signal {
            bucket: BUCKET.into(),
            key: "other/export/metadata/BILLING_PERIOD=2024-06/other-Manifest.json".into(),
            etag: None,
            event_time_ms: BASE,
        };
        world
            .objects
            .put(BUCKET, &foreign.key, vec![b' '; 64 * 1024 * 1024], BASE);
        world.plan.arm(None);
        let outcomes = world.ingest().handle(&foreign).await.expect("handled");
        assert!(
            matches!(outcomes[0], IngestOutcome::Foreign { .. }),
            "{outcomes:?}"
        );
        assert!(
            !world.plan.log().iter().any(|c| c == "reading an object"),
            "read before the table check: {:?}",
            world.plan.log()
        );
        // Ours, but far larger than any manifest: refused, with a stable error class.
        let signal = world.deliver(1, Outcome::Succeeds);
        world
            .objects
            .put(BUCKET, &signal.key, vec![b' '; 64 * 1024 * 1024], BASE);
        let err = world.ingest().handle(&signal).await.expect_err("too large");
        assert_eq!(err.kind(), ErrorKind::InvalidEvent, "{err}");
        assert!(err.to_string().contains("limit"), "{err}");
    });
}

/// Two invocations moving one run (an ingest retry still holding CLAIMED while the writer
/// published): the stale write is refused as a `Conflict`, never a lost update.
#[test]
fn a_stale_run_write_is_a_conflict_not_a_lost_update() {
    block_on(async {
        let world = World::new(false);
        deliver_and_publish(&world, 1).await;
        let mut stale = world.store.runs(june()).await.expect("runs").remove(0);
        assert_eq!(stale.state, RunState::Serving);
        stale.state = RunState::Querying;
        let err = world
            .store
            .put_run(&stale, RunState::Claimed)
            .await
            .expect_err("refused");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(PipelineError::from(err).kind(), ErrorKind::Conflict);
        let runs = world.store.runs(june()).await.expect("runs");
        assert_eq!(runs[0].state, RunState::Serving);
    });
}

/// Lambda diagnostics: a stable class and a concise message.
#[test]
fn errors_have_a_stable_class_and_a_concise_message() {
    block_on(async {
        let world = World::new(false);
        let missing = Signal {
            bucket: BUCKET.into(),
            key: format!(
                "{EXPORT_ROOT}/metadata/BILLING_PERIOD=2024-06/kubecur-export-Manifest.json"
            ),
            etag: None,
            event_time_ms: BASE,
        };
        let err = world
            .ingest()
            .handle(&missing)
            .await
            .expect_err("no object");
        assert_eq!(err.kind().name(), "InvalidEvent");
        assert!(err.to_string().len() < 200, "{err}");
        // An Athena event of a query Athena does not know, or that names no run: not ours.
        let unknown = QueryEvent {
            query_id: "q-unknown".into(),
            state: "SUCCEEDED".into(),
            workgroup: WORKGROUP.into(),
        };
        assert_eq!(
            world.writer().handle(&unknown).await.expect("handled"),
            WriterOutcome::NotOurs
        );
        world.plan.arm(Some((1, Strike::Throttle)));
        let err = world
            .ingest()
            .handle(&missing)
            .await
            .expect_err("throttled");
        assert_eq!(err.kind().name(), "Transient");
    });
}

/// The reconciler starts a delivery whose events were all lost, and finishes a run whose
/// invocation died after claiming it.
#[test]
fn the_reconciler_starts_lost_deliveries_and_resumes_stuck_runs() {
    block_on(async {
        let world = World::new(false);
        world.deliver(1, Outcome::Succeeds);
        world.clock.advance(HOUR);
        let report = world.reconciler().reconcile().await.expect("reconciled");
        assert_eq!(
            (report.started, report.stale, report.failed),
            (1, 0, 0),
            "{report:?}"
        );
        assert_eq!(world.serving_delivery().await, Some(1));

        let signal = world.deliver(2, Outcome::Succeeds);
        // Claimed, then died (its retries too: the event is in the dead-letter queue).
        world
            .plan
            .arm_named(Some(("noting the latest run", Strike::Before)));
        assert!(world.ingest().handle(&signal).await.is_err());
        world.plan.arm_named(None);
        let runs = world.store.runs(june()).await.expect("runs");
        assert!(
            runs.iter().any(|r| r.state == RunState::Claimed),
            "{runs:?}"
        );
        world.clock.advance(HOUR);
        let report = world.reconciler().reconcile().await.expect("reconciled");
        assert_eq!(world.serving_delivery().await, Some(2), "{report:?}");
        assert!(world
            .store
            .runs(june())
            .await
            .expect("runs")
            .iter()
            .all(|r| r.state.is_final()));
    });
}

// ---------------------------------------------------------------------------------------------
// The simulation.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Event {
    Object(Signal),
    Query(String),
}

/// splitmix64: a small deterministic generator for the interleaving, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

#[derive(Debug, Clone)]
struct Schedule {
    seed: u64,
    legacy: bool,
    outcomes: Vec<Outcome>,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Succeeds),
        1 => Just(Outcome::Fails),
        1 => Just(Outcome::IsCancelled),
        1 => Just(Outcome::NonFinite),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(outcome(), 1..=4),
    )
        .prop_map(|(seed, legacy, outcomes)| Schedule {
            seed,
            legacy,
            outcomes,
        })
}

/// Lambda's asynchronous invocation: two retries, then the event goes to the on-failure destination.
const ATTEMPTS: u32 = 3;

async fn simulate(schedule: &Schedule) -> Result<(), String> {
    let world = World::new(schedule.legacy);
    let mut rng = Rng(schedule.seed);
    let mut pool: Vec<(Event, u32)> = Vec::new();
    let mut delivered = 0;
    let mut seen_queries: BTreeSet<String> = BTreeSet::new();
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > 200 {
            return Err("the schedule did not end".into());
        }
        let deliver = delivered < schedule.outcomes.len() && (pool.is_empty() || rng.below(3) == 0);
        if deliver {
            delivered += 1;
            let signal = world.deliver(delivered, schedule.outcomes[delivered - 1]);
            // Each notification arrives 0 to 3 times (S3 delivers at least once; lost ones happen).
            for _ in 0..rng.below(4) {
                pool.push((Event::Object(signal.clone()), 1));
            }
            continue;
        }
        if pool.is_empty() {
            break;
        }
        let (event, attempt) = pool.swap_remove(rng.below(pool.len() as u64) as usize);
        world.clock.advance(1 + rng.below(60_000) as i64);
        world.plan.arm(match rng.below(10) {
            0..=2 => Some((1 + rng.below(14) as usize, Strike::Before)),
            3..=4 => Some((1 + rng.below(14) as usize, Strike::After)),
            5 => Some((1 + rng.below(14) as usize, Strike::Throttle)),
            _ => None,
        });
        let result = match &event {
            Event::Object(signal) => world.ingest().handle(signal).await.map(|_| ()),
            Event::Query(query_id) => {
                let event = world.query_event(query_id).await;
                world.writer().handle(&event).await.map(|_| ())
            }
        };
        world.plan.arm(None);
        if let Err(err) = result {
            if err.kind() == ErrorKind::Conflict {
                return Err(format!("an illegal transition: {err}"));
            }
            if attempt < ATTEMPTS {
                pool.push((event, attempt + 1));
            }
        }
        // Every query that started now sends its state change 0 to 2 times.
        for query in world.allocation_queries() {
            if seen_queries.insert(query.clone()) {
                for _ in 0..rng.below(3) {
                    pool.push((Event::Query(query.clone()), 1));
                }
            }
        }
        // A reader at any moment sees one whole snapshot (or none), never a mix, never an error.
        world.read_june().await?;
    }
    // Deliveries whose events were all still pending are written to S3 before the pass.
    while delivered < schedule.outcomes.len() {
        delivered += 1;
        world.deliver(delivered, schedule.outcomes[delivered - 1]);
    }
    world.clock.advance(2 * HOUR);
    let report = world
        .reconciler()
        .reconcile()
        .await
        .map_err(|e| format!("the reconciler failed: {e}"))?;
    if !report.errors.is_empty() {
        return Err(format!("reconciler errors: {:?}", report.errors));
    }
    check(&world, schedule).await
}

async fn check(world: &World, schedule: &Schedule) -> Result<(), String> {
    let newest = schedule.outcomes.len();
    let runs = world.store.runs(june()).await.map_err(|e| e.to_string())?;
    if let Some(run) = runs.iter().find(|r| !r.state.is_final()) {
        return Err(format!("run {} left {}", run.id, run.state.name()));
    }
    let newest_run = runs
        .iter()
        .find(|r| delivery_of(&r.id) == Some(newest))
        .ok_or_else(|| format!("no run for the newest delivery {newest}: {runs:?}"))?;
    let pointer = world.pointer().await.ok_or("no pointer for June")?;
    let health = world.health().await;
    let reader = world.read_june().await?;
    match schedule.outcomes[newest - 1] {
        Outcome::Succeeds => {
            if newest_run.state != RunState::Serving {
                return Err(format!("newest run is {}", newest_run.state.name()));
            }
            if world.serving_delivery().await != Some(newest) || reader != Some(newest) {
                return Err(format!(
                    "June serves {:?} (readers see {reader:?}), not the newest delivery {newest}",
                    world.serving_delivery().await
                ));
            }
            let serving = pointer.serving.as_ref().ok_or("nothing serves")?;
            if serving.version != delivery_time(newest) {
                return Err(format!(
                    "serving version {} is not the newest delivery's",
                    serving.version
                ));
            }
            if health != Health::Fresh {
                return Err(format!(
                    "newest delivery serves but /status says {}",
                    health.label()
                ));
            }
        }
        _ => {
            if newest_run.state != RunState::Failed {
                return Err(format!(
                    "newest (failing) run is {}",
                    newest_run.state.name()
                ));
            }
            if !matches!(health, Health::Failed(_)) {
                return Err(format!(
                    "the newest delivery failed but /status says {}",
                    health.label()
                ));
            }
            if reader == Some(newest) {
                return Err("a failed delivery serves".into());
            }
        }
    }
    let serving_version = pointer.serving.as_ref().map(|s| s.version);
    for (version, ttl) in world.store.stored_versions(june()) {
        if Some(version) != serving_version && ttl.is_none() {
            return Err(format!(
                "snapshot v{version} no longer serves and has no TTL"
            ));
        }
        if Some(version) == serving_version && ttl.is_some() {
            return Err(format!("the serving snapshot v{version} expires"));
        }
    }
    if let Some(serving) = &pointer.serving {
        for level in Level::ALL {
            let groups = world
                .store
                .groups(serving, level)
                .await
                .map_err(|e| e.to_string())?;
            if groups.len() as u64 != serving.expected_groups(level) {
                return Err(format!(
                    "{} groups of level {} for {}",
                    groups.len(),
                    level.name(),
                    serving.expected_groups(level)
                ));
            }
        }
    }
    if runs.iter().any(|r| r.state == RunState::Failed) && pointer.last_failure.is_none() {
        return Err("a run failed and the pointer has no failure".into());
    }
    let body = world.status_body().await;
    if body["data"][0]["health"] != serde_json::json!(health.label()) {
        return Err(format!(
            "/status says {} for {}",
            body["data"][0]["health"],
            health.label()
        ));
    }
    Ok(())
}

/// Schedules run by the simulation (`KUBECUR_SIMULATION_CASES` overrides).
fn cases() -> u32 {
    std::env::var("KUBECUR_SIMULATION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

#[test]
fn fault_simulation_holds_the_invariants() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // Deterministic: the same schedules on every run and machine.
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        failure_persistence: None,
        ..Config::default()
    });
    let counted = count.clone();
    let result = runner.run(&schedule(), move |schedule| {
        counted.fetch_add(1, Ordering::Relaxed);
        block_on(simulate(&schedule))
            .map_err(|reason| TestCaseError::fail(format!("{reason}\n  schedule: {schedule:?}")))
    });
    println!(
        "fault simulation: {} schedules run (ingest + writer + reconciler over the memory ports)",
        count.load(Ordering::Relaxed)
    );
    if let Err(err) = result {
        panic!("{err}");
    }
}
