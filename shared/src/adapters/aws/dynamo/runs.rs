//! The run repository: claims, run records, the query index and the per-period notes on the pointer
//! (newest known run, last failure).

use super::codec::{
    malformed, n, query_key, read_run, run_item, run_key, s, text, to_json, LATEST, LATEST_VERSION,
    PK, POINTER_PK, SK,
};
use super::{backend, DynamoStore};
use crate::domain::run::{LatestRun, Run, RunState};
use crate::domain::window::BillingPeriod;
use crate::ports::pipeline::{Claim, RunStore};
use crate::ports::{RunFailure, StoreError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl DynamoStore {
    /// Records `run` as the period's `latest` together with the `extra` attribute, if `run` is at least
    /// as new as the recorded newest run; otherwise the `extra` attribute alone (when given).
    async fn update_pointer(
        &self,
        run: &Run,
        extra: Option<(&str, String)>,
    ) -> Result<(), StoreError> {
        self.count_other();
        let mut set = "SET #latest = :latest, #lv = :lv".to_string();
        if extra.is_some() {
            set.push_str(", #extra = :extra");
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(POINTER_PK))
            .key(SK, s(run.period.label()))
            .update_expression(set)
            .condition_expression("attribute_not_exists(#lv) OR #lv <= :lv")
            .expression_attribute_names("#latest", LATEST)
            .expression_attribute_names("#lv", LATEST_VERSION)
            .expression_attribute_values(":latest", s(to_json(&LatestRun::of(run))))
            .expression_attribute_values(":lv", n(run.version));
        if let Some((name, value)) = &extra {
            request = request
                .expression_attribute_names("#extra", *name)
                .expression_attribute_values(":extra", s(value.clone()));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                // A newer run is recorded: only the extra attribute (if any) is set.
                let Some((name, value)) = extra else {
                    return Ok(());
                };
                self.count_other();
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key(PK, s(POINTER_PK))
                    .key(SK, s(run.period.label()))
                    .update_expression("SET #extra = :extra")
                    .expression_attribute_names("#extra", name)
                    .expression_attribute_values(":extra", s(value))
                    .send()
                    .await
                    .map_err(backend(format!(
                        "recording on the pointer of {}",
                        run.period.label()
                    )))?;
                Ok(())
            }
            Err(err) => Err(backend(format!(
                "recording run {} on the pointer of {}",
                run.id,
                run.period.label()
            ))(err)),
        }
    }
}

impl RunStore for DynamoStore {
    async fn claim_run(&self, run: &Run) -> Result<Claim, StoreError> {
        self.count_other();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(run)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::New),
            Err(err) => {
                if let Some(existing) = err.as_service_error().and_then(|e| match e {
                    PutItemError::ConditionalCheckFailedException(e) => e.item(),
                    _ => None,
                }) {
                    return Ok(Claim::Existing(Box::new(read_run(existing)?)));
                }
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception())
                {
                    // Older DynamoDB-compatibles do not return the item: read it.
                    return self
                        .run(run.period, &run.id)
                        .await?
                        .map(|run| Claim::Existing(Box::new(run)))
                        .ok_or_else(|| malformed(&run.id, "claimed but unreadable"));
                }
                Err(backend(format!("claiming run {}", run.id))(err))
            }
        }
    }

    async fn run(&self, period: BillingPeriod, run_id: &str) -> Result<Option<Run>, StoreError> {
        self.count_other();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(run_key(period, run_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend(format!("reading run {run_id}")))?;
        out.item().map(read_run).transpose()
    }

    async fn runs(&self, period: BillingPeriod) -> Result<Vec<Run>, StoreError> {
        self.query_partition(&format!("RUN#{}", period.label()))
            .await?
            .iter()
            .map(read_run)
            .collect()
    }

    async fn run_by_query(&self, query_id: &str) -> Result<Option<Run>, StoreError> {
        self.count_other();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(query_key(query_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend(format!("looking up query {query_id}")))?;
        match out.item() {
            None => Ok(None),
            Some(item) => {
                let run_id = text(item, "run_id", query_id)?.to_string();
                let period =
                    crate::domain::window::BillingPeriod::parse(text(item, "period", query_id)?)
                        .map_err(|e| malformed(query_id, e.to_string()))?;
                self.run(period, &run_id).await
            }
        }
    }

    async fn index_query(&self, run: &Run, query_id: &str) -> Result<(), StoreError> {
        self.count_other();
        let mut item = query_key(query_id);
        item.insert("run_id".into(), s(&run.id));
        item.insert("period".into(), s(run.period.label()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend(format!("indexing query {query_id}")))?;
        Ok(())
    }

    async fn put_run(&self, run: &Run, from: RunState) -> Result<(), StoreError> {
        self.count_other();
        let mut item = run_item(run);
        item.insert("updated_at".into(), s(now_rfc3339()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":from", s(from.name()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Err(StoreError::Conflict {
                    key: run.id.clone(),
                    reason: format!(
                        "it is no longer {} (another invocation moved it on)",
                        from.name()
                    ),
                })
            }
            Err(err) => Err(backend(format!("recording run {}", run.id))(err)),
        }
    }

    async fn note_latest(&self, run: &Run) -> Result<(), StoreError> {
        self.update_pointer(run, None).await
    }

    async fn record_failure(&self, run: &Run, failure: &RunFailure) -> Result<(), StoreError> {
        self.update_pointer(run, Some(("last_failure", to_json(failure))))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[tokio::test]
    async fn a_second_claim_returns_the_existing_run() {
        let existing = Run {
            id: "cur/x#2024-06#exec-1".into(),
            period: BillingPeriod {
                year: 2024,
                month: 6,
            },
            version: 5,
            source: "exec-1".into(),
            state: RunState::Querying,
            query_id: Some("q-1".into()),
            columns: vec!["a".into()],
            tag_mapping: crate::domain::TagMapping::default(),
            missing_tags: vec![],
            failure: None,
            updated_at_ms: 3,
        };
        let stored = run_item(&existing);
        let rule = mock!(Client::put_item).then_error(move || {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .set_item(Some(stored.clone()))
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let mut again = existing.clone();
        again.state = RunState::Claimed;
        again.query_id = None;
        let claim = DynamoStore::new(client, "kubecur")
            .claim_run(&again)
            .await
            .expect("answered");
        assert_eq!(claim, Claim::Existing(Box::new(existing)));
    }

    #[tokio::test]
    async fn a_run_is_recorded_only_from_the_state_it_was_read_in() {
        let run = Run {
            id: "cur/x#2024-06#exec-1".into(),
            period: BillingPeriod {
                year: 2024,
                month: 6,
            },
            version: 5,
            source: "exec-1".into(),
            state: RunState::Querying,
            query_id: Some("q-1".into()),
            columns: vec![],
            tag_mapping: crate::domain::TagMapping::default(),
            missing_tags: vec![],
            failure: None,
            updated_at_ms: 3,
        };
        let rule = mock!(Client::put_item)
            .match_requests(|r| {
                r.condition_expression() == Some("#state = :from")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":from"))
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|v| v == "CLAIMED")
            })
            .then_error(|| {
                PutItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder().build(),
                )
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let err = DynamoStore::new(client, "kubecur")
            .put_run(&run, RunState::Claimed)
            .await
            .expect_err("the stored run moved on");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(rule.num_calls(), 1);
    }
}
