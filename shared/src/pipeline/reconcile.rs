//! The reconciler: on a schedule, for the recent billing periods, compare the newest delivery in S3
//! with what serves, start what was never started, and finish runs stuck in a non-final state (a lost
//! event, a crashed invocation whose retries ran out). It reports what it found as metrics.

use super::ingest::{delivery_root, Ingest, IngestOutcome, Signal};
use super::writer::{Writer, WriterOutcome};
use super::PipelineError;
use crate::domain::delivery::{classify, DeliveryObject};
use crate::domain::run::{Health, RunState};
use crate::domain::window::BillingPeriod;
use crate::ports::pipeline::{
    Catalog, ObjectMeta, ObjectReader, QueryRunner, RunStore, SnapshotWriter,
};
use chrono::{Datelike, Months};

/// How far back and how patiently the reconciler looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// Billing periods checked: the current one and this many before it (AWS keeps updating the
    /// previous month until its invoice is final).
    pub previous_periods: u32,
    /// A run in a non-final state for this long is resumed.
    pub stuck_after_ms: i64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            previous_periods: 2,
            stuck_after_ms: 30 * 60 * 1000,
        }
    }
}

/// What one pass found and did: the reconciler's metrics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub periods: u64,
    /// Deliveries found in S3 without a run, and started.
    pub started: u64,
    /// Runs found non-final beyond the threshold.
    pub stuck: u64,
    /// Stuck runs this pass took to a final state.
    pub resumed: u64,
    /// Periods not fresh after the pass (a run still going, or none serving).
    pub stale: u64,
    /// Periods whose newest delivery failed.
    pub failed: u64,
    /// What could not be done, one line each (the pass goes on past them).
    pub errors: Vec<String>,
}

/// The reconciler over the ingest's and the writer's ports.
#[derive(Debug, Clone)]
pub struct Reconciler<S, Q, C, O> {
    pub ingest: Ingest<S, Q, C, O>,
    pub writer: Writer<S, Q, O>,
    pub config: ReconcileConfig,
}

fn periods_back(now_ms: i64, back: u32) -> Vec<BillingPeriod> {
    let Some(now) = chrono::DateTime::from_timestamp_millis(now_ms) else {
        return Vec::new();
    };
    let first = BillingPeriod::of(now.date_naive()).first_day();
    (0..=back)
        .filter_map(|n| first.checked_sub_months(Months::new(n)))
        .map(|d| BillingPeriod {
            year: d.year(),
            month: d.month(),
        })
        .collect()
}

fn newest(objects: Vec<ObjectMeta>, keep: impl Fn(&str) -> bool) -> Option<ObjectMeta> {
    objects
        .into_iter()
        .filter(|o| keep(&o.key))
        .max_by_key(|o| (o.last_modified_ms, o.key.clone()))
}

impl<S, Q, C, O> Reconciler<S, Q, C, O>
where
    S: RunStore + SnapshotWriter,
    Q: QueryRunner,
    C: Catalog,
    O: ObjectReader,
{
    /// One pass. Errors on single periods or runs are collected in the report; an error that stops
    /// the whole pass (the catalog cannot be read) is returned.
    pub async fn reconcile(&self) -> Result<ReconcileReport, PipelineError> {
        let now = self.ingest.clock.now_ms();
        let periods = periods_back(now, self.config.previous_periods);
        let mut report = ReconcileReport {
            periods: periods.len() as u64,
            ..ReconcileReport::default()
        };
        let table = self.ingest.table().await?;
        let location = table.location.clone().unwrap_or_default();
        let (bucket, root) = delivery_root(&location).ok_or_else(|| {
            PipelineError::Misconfigured(format!(
                "the CUR table's location `{location}` is not s3://bucket/prefix/<folder>/"
            ))
        })?;
        // The newest delivery signal of each period (export manifests) or of the report (legacy).
        let mut signals = Vec::new();
        for period in &periods {
            let prefix = format!("{root}/metadata/BILLING_PERIOD={}/", period.label());
            match self.ingest.objects.list(&bucket, &prefix).await {
                Ok(listed) => signals.extend(newest(listed, |k| {
                    matches!(classify(k), DeliveryObject::ExportManifest { .. })
                })),
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        match self
            .ingest
            .objects
            .list(&bucket, &format!("{root}/cost_and_usage_data_status/"))
            .await
        {
            Ok(listed) => signals.extend(newest(listed, |k| {
                matches!(classify(k), DeliveryObject::LegacyStatus { .. })
            })),
            Err(e) => report.errors.push(e.to_string()),
        }
        for object in signals {
            let signal = Signal {
                bucket: bucket.clone(),
                key: object.key.clone(),
                etag: object.etag.clone(),
                event_time_ms: object.last_modified_ms.unwrap_or(now),
            };
            match self.ingest.handle(&signal).await {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        match &outcome {
                            IngestOutcome::Started { run_id, query_id } => {
                                tracing::warn!(run = %run_id, key = %object.key, "Reconciler: a delivery without a query was started.");
                                report.started += 1;
                                // A query that is already over (short ones are) is finished now;
                                // otherwise its event, or the next pass, does it.
                                if let Err(e) = self.finish_started(query_id).await {
                                    report.errors.push(format!("{run_id}: {e}"));
                                }
                            }
                            IngestOutcome::Failed { run_id, .. } => {
                                tracing::warn!(run = %run_id, key = %object.key, "Reconciler: a delivery's run could not start.");
                                report.started += 1;
                            }
                            _ => {}
                        }
                    }
                }
                Err(e) => report.errors.push(format!("{}: {e}", object.key)),
            }
        }
        for period in &periods {
            if let Err(e) = self.resume_stuck(*period, now, &table, &mut report).await {
                report.errors.push(format!("{}: {e}", period.label()));
            }
        }
        for status in self.writer.store.pointers(&periods).await? {
            let failure = status
                .last_failure
                .as_ref()
                .map(|f| (f.run_id.as_str(), f.reason.as_str()));
            match Health::judge(
                status.serving.as_ref().map(|s| s.version),
                status.latest.as_ref(),
                failure,
            ) {
                Health::Fresh => {}
                Health::Stale(why) => {
                    tracing::warn!(period = %status.period.label(), %why, "Period is stale.");
                    report.stale += 1;
                }
                Health::Failed(why) => {
                    tracing::warn!(period = %status.period.label(), %why, "Period's newest delivery failed.");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    async fn finish_started(&self, query_id: &str) -> Result<(), PipelineError> {
        if let Some(run) = self.writer.store.run_by_query(query_id).await? {
            self.writer.finish(run, query_id, None).await?;
        }
        Ok(())
    }

    async fn resume_stuck(
        &self,
        period: BillingPeriod,
        now: i64,
        table: &crate::ports::pipeline::TableInfo,
        report: &mut ReconcileReport,
    ) -> Result<(), PipelineError> {
        for mut run in self.writer.store.runs(period).await? {
            if !run.is_stuck(now, self.config.stuck_after_ms) {
                continue;
            }
            report.stuck += 1;
            tracing::warn!(run = %run.id, state = run.state.name(), "Reconciler: resuming a stuck run.");
            let done = match (run.state, run.query_id.clone()) {
                (RunState::Claimed, _) => {
                    self.ingest.resume(&mut run, table).await?;
                    // The query may have ended already (the memory Athena ends at once; a real one
                    // sends its event, or the next pass finds it).
                    match run.query_id.clone() {
                        Some(q) if run.state == RunState::Querying => {
                            self.writer.finish(run, &q, None).await?
                        }
                        _ if run.state.is_final() => WriterOutcome::AlreadyDone {
                            run_id: run.id.clone(),
                            state: run.state,
                        },
                        _ => WriterOutcome::NotFinal,
                    }
                }
                (_, Some(query_id)) => self.writer.finish(run, &query_id, None).await?,
                (state, None) => {
                    report.errors.push(format!(
                        "run {} is {} without a query id",
                        run.id,
                        state.name()
                    ));
                    continue;
                }
            };
            if !matches!(done, WriterOutcome::NotFinal) {
                report.resumed += 1;
            }
        }
        Ok(())
    }
}

/// The report as CloudWatch Embedded Metric Format: one log line CloudWatch turns into metrics
/// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
pub fn metrics_line(report: &ReconcileReport, namespace: &str, now_ms: i64) -> String {
    let metric = |name: &str| serde_json::json!({ "Name": name, "Unit": "Count" });
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[]],
                "Metrics": [
                    metric("StalePeriods"),
                    metric("FailedPeriods"),
                    metric("StuckRuns"),
                    metric("ResumedRuns"),
                    metric("StartedDeliveries"),
                    metric("ReconcileErrors"),
                ],
            }],
        },
        "StalePeriods": report.stale,
        "FailedPeriods": report.failed,
        "StuckRuns": report.stuck,
        "ResumedRuns": report.resumed,
        "StartedDeliveries": report.started,
        "ReconcileErrors": report.errors.len(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_periods_count_back_from_the_clock() {
        // 2024-07-01T06:12:31Z
        let periods = periods_back(1_719_814_351_000, 2);
        let labels: Vec<String> = periods.iter().map(|p| p.label()).collect();
        assert_eq!(labels, ["2024-07", "2024-06", "2024-05"]);
    }

    #[test]
    fn metrics_are_one_emf_line() {
        let report = ReconcileReport {
            stale: 2,
            stuck: 1,
            ..ReconcileReport::default()
        };
        let line = metrics_line(&report, "kubecur", 5);
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["StalePeriods"], 2);
        assert_eq!(value["StuckRuns"], 1);
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "kubecur"
        );
        let names: Vec<&str> = value["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        for name in names {
            assert!(value.get(name).is_some(), "{name} has a value");
        }
    }
}
