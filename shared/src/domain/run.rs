//! Allocation runs: one per CUR delivery and billing period, from claim to serving snapshot.
//!
//! The lifecycle is an explicit state machine ([`RunState::can_advance`], [`Run::advance`]):
//!
//! ```text
//!   CLAIMED ──query started──▶ QUERYING ──SUCCEEDED──▶ WRITING ──pointer flipped──▶ SERVING
//!      │                          │                      │  ╰──newer serves──▶ SUPERSEDED
//!      ╰──DDL/plan failed──╮      ╰──FAILED/CANCELLED╮   ╰──bad result/build──╮
//!                          ▼                          ▼                       ▼
//!                                        FAILED (reason recorded)
//! ```
//!
//! `SERVING`, `SUPERSEDED` and `FAILED` are final. A retried step re-enters its own state
//! (`CLAIMED → CLAIMED`, `QUERYING → QUERYING`, `WRITING → WRITING`): every step is idempotent.
//! Time comes in as a value (the use cases hold the clock), so the machine stays pure.

use super::allocation::{Allocation, AllocationRow};
use super::metric::CostMetric;
use super::named::named_enum;
use super::snapshot::Fnv128;
use super::tags::TagMapping;
use super::window::BillingPeriod;

/// A finished delivery of one billing period, as the ingest function learns of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The export (CUR 2.0 / FOCUS) or report (legacy) key prefix.
    pub root: String,
    pub period: BillingPeriod,
    /// The delivery's identity: the manifest's `executionId`, or the legacy status object's ETag.
    pub identity: String,
    /// When the delivery signal object was written (its `LastModified`; the event time when S3 does
    /// not say), in milliseconds since the Unix epoch. Newer deliveries of a period get larger snapshot
    /// versions. It is the object's time, not the event's: a late or repeated event reads the object
    /// as it is now, and its run must carry that delivery's time, which the reconciler (listing the
    /// objects) computes the same way.
    pub signalled_at_ms: i64,
}

impl Delivery {
    /// The run's id: report, billing period and delivery identity. Claimed exactly once.
    pub fn run_id(&self) -> String {
        format!("{}#{}#{}", self.root, self.period.label(), self.identity)
    }

    /// Athena's `ClientRequestToken` for this run (32 to 128 characters,
    /// docs/cur-reference.md#athena): a retried ingest of the same delivery gets the same query
    /// back instead of starting a second one.
    pub fn client_request_token(&self) -> String {
        request_token(&self.run_id())
    }

    /// The snapshot version this run will publish: the delivery time, so only a newer delivery can
    /// replace a period's snapshot, whatever order the events and queries finish in. (S3 keeps
    /// `LastModified` to the second: two deliveries of one period within a second, which AWS never
    /// makes, would be one version.)
    pub fn version(&self) -> i64 {
        self.signalled_at_ms
    }
}

fn request_token(run_id: &str) -> String {
    let mut hash = Fnv128::new();
    hash.write(run_id.as_bytes());
    format!("kubecur-{:032x}", hash.finish())
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    /// Claimed by an ingest invocation; the query may not have started yet.
    Claimed,
    /// The allocation query runs in Athena.
    Querying,
    /// The writer is writing the snapshot's items.
    Writing,
    /// The snapshot is the period's serving one (or was, until a newer one replaced it).
    Serving,
    /// A newer snapshot already served when this one was complete: its items expire.
    Superseded,
    /// The query failed or was cancelled: the previous snapshot keeps serving.
    Failed,
}

named_enum!(RunState {
    Claimed => "CLAIMED",
    Querying => "QUERYING",
    Writing => "WRITING",
    Serving => "SERVING",
    Superseded => "SUPERSEDED",
    Failed => "FAILED",
} parse: exact);

impl RunState {
    /// Whether the run is over: a repeated event for it starts nothing.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Serving | RunState::Superseded | RunState::Failed
        )
    }

    /// The lifecycle's transitions (module documentation). A step retried after a crash re-enters its
    /// own state; nothing leaves a final state.
    pub fn can_advance(self, to: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, to),
            (Claimed, Claimed | Querying | Failed)
                | (Querying, Querying | Writing | Failed)
                | (Writing, Writing | Serving | Superseded | Failed)
        )
    }
}

/// A transition the lifecycle does not allow (e.g. a final run asked to change).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run {run_id} cannot go from {} to {}", from.name(), to.name())]
pub struct IllegalTransition {
    pub run_id: String,
    pub from: RunState,
    pub to: RunState,
}

/// Everything the writer needs to turn a finished query into a snapshot, recorded by the ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub period: BillingPeriod,
    pub version: i64,
    pub source: String,
    pub state: RunState,
    pub query_id: Option<String>,
    /// The table's columns when the query was planned: the writer re-plans with them to read the result.
    pub columns: Vec<String>,
    /// The tag mapping the query was planned with (typed; validated once, in the configuration).
    pub tag_mapping: TagMapping,
    /// Tag columns the data lacks (legacy CUR: tag not activated).
    pub missing_tags: Vec<String>,
    pub failure: Option<String>,
    /// When the state last changed, milliseconds since the Unix epoch: the reconciler resumes runs
    /// that stay in a non-final state for too long.
    pub updated_at_ms: i64,
}

impl Run {
    /// Moves the run to `to` at `now_ms`, or refuses a transition the lifecycle does not allow.
    pub fn advance(&mut self, to: RunState, now_ms: i64) -> Result<(), IllegalTransition> {
        if !self.state.can_advance(to) {
            return Err(IllegalTransition {
                run_id: self.id.clone(),
                from: self.state,
                to,
            });
        }
        self.state = to;
        self.updated_at_ms = now_ms;
        Ok(())
    }

    /// Moves the run to `FAILED` with `reason`.
    pub fn fail(&mut self, reason: &str, now_ms: i64) -> Result<(), IllegalTransition> {
        self.advance(RunState::Failed, now_ms)?;
        self.failure = Some(reason.to_string());
        Ok(())
    }

    /// The line kubecur puts first in the allocation query's SQL. Athena returns the query text with
    /// `GetQueryExecution`, so a writer that meets a query id it has no index for (the index is written
    /// after `StartQueryExecution`) can still tell which run started it.
    ///
    /// A block comment, as dbt-athena puts before its queries; `*/` inside the JSON is written `*\/`.
    pub fn query_marker(&self) -> String {
        let json = serde_json::to_string(&(self.period.label(), &self.id))
            .unwrap_or_default()
            .replace("*/", "*\\/");
        format!("{QUERY_MARKER}{json} */\n")
    }

    /// Athena's `ClientRequestToken` for the run's query (the same as its delivery's).
    pub fn client_request_token(&self) -> String {
        request_token(&self.id)
    }

    /// Whether the run has been in a non-final state for at least `threshold_ms` at `now_ms`.
    pub fn is_stuck(&self, now_ms: i64, threshold_ms: i64) -> bool {
        !self.state.is_final() && now_ms.saturating_sub(self.updated_at_ms) >= threshold_ms
    }
}

const QUERY_MARKER: &str = "/* kubecur-run: ";

/// The run (billing period, run id) named by the first line of `sql`, if kubecur wrote it.
pub fn parse_query_marker(sql: &str) -> Option<(BillingPeriod, String)> {
    let first = sql.lines().next()?.trim();
    let json = first.strip_prefix(QUERY_MARKER)?.strip_suffix("*/")?;
    let (period, id): (String, String) = serde_json::from_str(json).ok()?;
    Some((BillingPeriod::parse(&period).ok()?, id))
}

/// The newest delivery kubecur knows of for a billing period, kept on the period's pointer so that
/// `GET /status` can tell fresh from stale and failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestRun {
    pub run_id: String,
    pub version: i64,
    pub state: RunState,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}

impl LatestRun {
    pub fn of(run: &Run) -> LatestRun {
        LatestRun {
            run_id: run.id.clone(),
            version: run.version,
            state: run.state,
            updated_at_ms: run.updated_at_ms,
        }
    }
}

/// What an operator needs to know about a billing period's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The serving snapshot is the newest delivery's.
    Fresh,
    /// A newer delivery exists whose snapshot does not serve yet (or nothing serves yet).
    Stale(String),
    /// The newest delivery's run failed; the previous snapshot (if any) keeps serving.
    Failed(String),
}

impl Health {
    /// `fresh`, `stale (why)` or `failed (why)`.
    pub fn label(&self) -> String {
        match self {
            Health::Fresh => "fresh".into(),
            Health::Stale(why) => format!("stale ({why})"),
            Health::Failed(why) => format!("failed ({why})"),
        }
    }

    /// Judges a period from its serving version, its newest known run and its last failure
    /// (run id and reason).
    pub fn judge(
        serving_version: Option<i64>,
        latest: Option<&LatestRun>,
        last_failure: Option<(&str, &str)>,
    ) -> Health {
        match (serving_version, latest) {
            (_, Some(latest)) if latest.state == RunState::Failed => Health::Failed(
                last_failure
                    .filter(|(run, _)| *run == latest.run_id)
                    .map(|(_, reason)| reason.to_string())
                    .unwrap_or_else(|| format!("run {} failed", latest.run_id)),
            ),
            (Some(serving), Some(latest)) if serving >= latest.version => Health::Fresh,
            (Some(_), None) => Health::Fresh,
            (_, Some(latest)) => Health::Stale(format!(
                "newer delivery {} is {} since {}",
                latest.run_id,
                latest.state.name(),
                chrono::DateTime::from_timestamp_millis(latest.updated_at_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| latest.updated_at_ms.to_string())
            )),
            (None, None) => Health::Stale("no snapshot yet".into()),
        }
    }
}

/// Costs beyond this magnitude are refused: no real CUR has them, and they would swamp every sum.
pub const ABSURD_COST: f64 = 1e15;

/// A figure a run must not publish: non-finite or absurdly large, named by column and row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column `{column}` of result row {row} ({keys}) is {value}: not a usable cost (NaN, infinite or beyond ±1e15)")]
pub struct AbsurdFigure {
    pub column: &'static str,
    /// 1-based data row of the result (the header is row 0).
    pub row: usize,
    pub keys: String,
    pub value: f64,
}

/// Checks every cost of an allocation read from a query result before it becomes a snapshot: a NaN
/// or infinite figure would be stored as JSON `null` and break every read of the period.
pub fn check_figures(allocation: &Allocation) -> Result<(), AbsurdFigure> {
    for (at, row) in allocation.rows.iter().enumerate() {
        check_row(at + 1, row)?;
    }
    Ok(())
}

/// [`check_figures`] for one row, numbered `row` (1-based), as the writer reads them.
pub fn check_row(row: usize, figures: &AllocationRow) -> Result<(), AbsurdFigure> {
    for metric in CostMetric::ALL {
        let value = figures.costs.get(metric);
        if !value.is_finite() || value.abs() > ABSURD_COST {
            return Err(AbsurdFigure {
                column: metric.sql_alias(),
                row,
                keys: figures.keys.join("/"),
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(identity: &str) -> Delivery {
        Delivery {
            root: "cur/kubecur-export".into(),
            period: BillingPeriod {
                year: 2024,
                month: 6,
            },
            identity: identity.into(),
            signalled_at_ms: 1_719_814_351_123,
        }
    }

    #[test]
    fn request_tokens_fit_athena_and_differ_per_delivery() {
        let token = delivery("exec-1").client_request_token();
        assert!((32..=128).contains(&token.len()), "{token}");
        assert_eq!(token, delivery("exec-1").client_request_token());
        assert_ne!(token, delivery("exec-2").client_request_token());
    }

    #[test]
    fn run_ids_name_report_period_and_delivery() {
        assert_eq!(
            delivery("exec-1").run_id(),
            "cur/kubecur-export#2024-06#exec-1"
        );
    }

    #[test]
    fn states_round_trip_and_final_ones_are_known() {
        for state in RunState::ALL {
            assert_eq!(RunState::parse(state.name()), Some(state));
        }
        assert!(RunState::Serving.is_final());
        assert!(!RunState::Writing.is_final());
        assert_eq!(RunState::parse("serving"), None);
    }

    fn run(state: RunState) -> Run {
        Run {
            id: delivery("exec-1").run_id(),
            period: delivery("exec-1").period,
            version: 1,
            source: "exec-1".into(),
            state,
            query_id: None,
            columns: vec![],
            tag_mapping: TagMapping::default(),
            missing_tags: vec![],
            failure: None,
            updated_at_ms: 0,
        }
    }

    const ALL: [RunState; 6] = [
        RunState::Claimed,
        RunState::Querying,
        RunState::Writing,
        RunState::Serving,
        RunState::Superseded,
        RunState::Failed,
    ];

    #[test]
    fn the_lifecycle_allows_exactly_its_transitions() {
        use RunState::*;
        let allowed = [
            (Claimed, Claimed),
            (Claimed, Querying),
            (Claimed, Failed),
            (Querying, Querying),
            (Querying, Writing),
            (Querying, Failed),
            (Writing, Writing),
            (Writing, Serving),
            (Writing, Superseded),
            (Writing, Failed),
        ];
        for from in ALL {
            for to in ALL {
                let mut r = run(from);
                let result = r.advance(to, 42);
                if allowed.contains(&(from, to)) {
                    assert_eq!(result, Ok(()), "{from:?} -> {to:?}");
                    assert_eq!((r.state, r.updated_at_ms), (to, 42));
                } else {
                    let err = result.expect_err("illegal");
                    assert_eq!((err.from, err.to), (from, to));
                    assert_eq!(r.state, from, "a refused transition changes nothing");
                    assert_eq!(r.updated_at_ms, 0);
                }
            }
        }
        for state in ALL {
            assert_eq!(
                state.is_final(),
                ALL.iter().all(|to| !state.can_advance(*to)),
                "final states are exactly those that go nowhere: {state:?}"
            );
        }
    }

    #[test]
    fn failing_records_the_reason_and_final_runs_cannot_fail_again() {
        let mut r = run(RunState::Querying);
        r.fail("Athena said no", 7).expect("allowed");
        assert_eq!(r.failure.as_deref(), Some("Athena said no"));
        assert!(r.fail("again", 8).is_err());
        assert_eq!(r.updated_at_ms, 7);
    }

    #[test]
    fn stuck_means_non_final_for_at_least_the_threshold() {
        let mut r = run(RunState::Querying);
        r.updated_at_ms = 1_000;
        assert!(!r.is_stuck(1_999, 1_000));
        assert!(r.is_stuck(2_000, 1_000));
        r.state = RunState::Serving;
        assert!(!r.is_stuck(1_000_000, 1_000));
    }

    #[test]
    fn query_markers_round_trip_even_with_odd_ids() {
        let mut r = run(RunState::Claimed);
        r.id = "cur/odd \"root\"\n*/ DROP#2024-06#x".into();
        let sql = r.query_marker() + "SELECT 1";
        assert_eq!(parse_query_marker(&sql), Some((r.period, r.id.clone())));
        assert_eq!(parse_query_marker("SELECT 1"), None);
        assert!(!r
            .query_marker()
            .trim_end()
            .trim_end_matches("*/")
            .contains("*/"));
        assert_eq!(
            parse_query_marker("/* kubecur-run: [\"2024-13\",\"x\"] */"),
            None
        );
    }

    #[test]
    fn health_tells_fresh_stale_and_failed_apart() {
        let latest = |version, state| LatestRun {
            run_id: format!("run-{version}"),
            version,
            state,
            updated_at_ms: 1_719_814_351_000,
        };
        assert_eq!(Health::judge(Some(5), None, None), Health::Fresh);
        assert_eq!(
            Health::judge(Some(5), Some(&latest(5, RunState::Serving)), None),
            Health::Fresh
        );
        let stale = Health::judge(Some(5), Some(&latest(6, RunState::Querying)), None);
        assert!(
            matches!(&stale, Health::Stale(why) if why.contains("run-6") && why.contains("QUERYING") && why.contains("2024-07-01T06:12:31Z")),
            "{stale:?}"
        );
        assert_eq!(
            Health::judge(
                Some(5),
                Some(&latest(6, RunState::Failed)),
                Some(("run-6", "Athena query q failed: boom"))
            )
            .label(),
            "failed (Athena query q failed: boom)"
        );
        assert_eq!(
            Health::judge(None, None, None).label(),
            "stale (no snapshot yet)"
        );
    }

    #[test]
    fn non_finite_and_absurd_figures_are_named_by_column_and_row() {
        use crate::domain::allocation::{AllocationRow, CostVector};
        let row = |cost: f64| AllocationRow {
            keys: vec!["2024-06-01".into(), "payments".into()],
            allocated: true,
            costs: CostVector([1.0, 1.0, 1.0, cost]),
            shared: Default::default(),
            resources: 1,
            resource_ids: Some(crate::domain::resources::ResourceSet::from_hashes([1])),
            line_items: 1,
        };
        let allocation = |costs: &[f64]| Allocation {
            flavour: crate::domain::Flavour::Cur2,
            window: None,
            group_by: vec![],
            rows: costs.iter().map(|c| row(*c)).collect(),
            warnings: vec![],
        };
        assert_eq!(check_figures(&allocation(&[1.0, -2.5, 9.9e14])), Ok(()));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5e15, -2e15] {
            let err = check_figures(&allocation(&[1.0, bad])).expect_err("refused");
            assert_eq!(err.row, 2);
            assert_eq!(err.column, CostMetric::ALL[3].sql_alias());
            assert!(err.to_string().contains("payments"), "{err}");
        }
    }
}
