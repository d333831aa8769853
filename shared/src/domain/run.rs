//! Allocation runs: one per CUR delivery and billing period, from claim to serving snapshot.

use super::named::named_enum;
use super::snapshot::Fnv128;
use super::window::BillingPeriod;

/// A finished delivery of one billing period, as the ingest function learns of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The export (CUR 2.0 / FOCUS) or report (legacy) key prefix.
    pub root: String,
    pub period: BillingPeriod,
    /// The delivery's identity: the manifest's `executionId`, or the legacy status object's ETag.
    pub identity: String,
    /// When the delivery signal was written (S3 event time), in milliseconds since the Unix epoch.
    /// Newer deliveries of a period get larger snapshot versions.
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
        let mut hash = Fnv128::new();
        hash.write(self.run_id().as_bytes());
        format!("kubecur-{:032x}", hash.finish())
    }

    /// The snapshot version this run will publish: the delivery time, so only a newer delivery can
    /// replace a period's snapshot, whatever order the events and queries finish in.
    pub fn version(&self) -> i64 {
        self.signalled_at_ms
    }
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
    /// Tag key overrides (`CONCEPT=KEY[,KEY]`), as configured when the query was planned.
    pub tag_keys: Vec<String>,
    /// Tag columns the data lacks (legacy CUR: tag not activated).
    pub missing_tags: Vec<String>,
    pub failure: Option<String>,
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
}
