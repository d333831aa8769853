//! Athena: start a query (idempotently), wait for it, read its state and output location.

use super::retry::Backoff;
use super::AwsError;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use aws_sdk_athena::Client;
use std::time::Duration;

pub use crate::ports::pipeline::{QueryState, QueryStatus};

/// Athena in one workgroup.
#[derive(Debug, Clone)]
pub struct Athena {
    client: Client,
    workgroup: String,
    /// Explicit result location; `None` when the workgroup's enforced configuration sets it (a
    /// workgroup with managed query results rejects an explicit one, docs/cur-reference.md#athena).
    output_location: Option<String>,
}

impl Athena {
    pub fn new(
        client: Client,
        workgroup: impl Into<String>,
        output_location: Option<String>,
    ) -> Athena {
        Athena {
            client,
            workgroup: workgroup.into(),
            output_location,
        }
    }

    pub fn workgroup(&self) -> &str {
        &self.workgroup
    }

    /// Starts `sql` in `database`. With a `token` (32–128 characters), a repeated start of the same
    /// run returns the first query instead of starting another (Athena API reference,
    /// StartQueryExecution `ClientRequestToken`: "If another StartQueryExecution request is received,
    /// the same response is returned and another query is not created"; a changed query string with
    /// the same token is an error). Without one the SDK generates a fresh token per call.
    pub async fn start(
        &self,
        sql: &str,
        database: &str,
        token: Option<&str>,
    ) -> Result<String, AwsError> {
        let mut request = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(QueryExecutionContext::builder().database(database).build())
            .set_client_request_token(token.map(str::to_string));
        if let Some(location) = &self.output_location {
            request = request.result_configuration(
                ResultConfiguration::builder()
                    .output_location(location)
                    .build(),
            );
        }
        let out = request
            .send()
            .await
            .map_err(AwsError::from_sdk("starting an Athena query"))?;
        out.query_execution_id().map(str::to_string).ok_or_else(|| {
            AwsError::new("starting an Athena query", "no query execution id returned")
        })
    }

    pub async fn status(&self, query_id: &str) -> Result<QueryStatus, AwsError> {
        let out = self
            .client
            .get_query_execution()
            .query_execution_id(query_id)
            .send()
            .await
            .map_err(AwsError::from_sdk(format!(
                "reading Athena query {query_id}"
            )))?;
        let execution = out.query_execution().ok_or_else(|| {
            AwsError::new(
                format!("reading Athena query {query_id}"),
                "no execution returned",
            )
        })?;
        let status = execution.status();
        let state = match status.and_then(|s| s.state()) {
            Some(QueryExecutionState::Succeeded) => QueryState::Succeeded,
            Some(QueryExecutionState::Failed) => QueryState::Failed,
            Some(QueryExecutionState::Cancelled) => QueryState::Cancelled,
            _ => QueryState::Running,
        };
        let reason = status.and_then(|s| {
            s.state_change_reason().map(str::to_string).or_else(|| {
                s.athena_error()
                    .and_then(|e| e.error_message())
                    .map(str::to_string)
            })
        });
        Ok(QueryStatus {
            state,
            reason,
            output_location: execution
                .result_configuration()
                .and_then(|r| r.output_location())
                .map(str::to_string),
            query: execution.query().map(str::to_string),
        })
    }

    /// Polls until the query ends or `timeout` passes (then an error naming the query).
    pub async fn wait(&self, query_id: &str, timeout: Duration) -> Result<QueryStatus, AwsError> {
        let started = tokio::time::Instant::now();
        let mut backoff =
            Backoff::with(Duration::from_millis(200), Duration::from_secs(2), u32::MAX);
        loop {
            let status = self.status(query_id).await?;
            if status.state != QueryState::Running {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                return Err(AwsError::new(
                    format!("waiting for Athena query {query_id}"),
                    format!("still running after {} s", timeout.as_secs()),
                ));
            }
            backoff.wait().await;
        }
    }
}

impl crate::ports::pipeline::QueryRunner for Athena {
    fn workgroup(&self) -> &str {
        &self.workgroup
    }

    async fn start(
        &self,
        sql: &str,
        database: &str,
        token: Option<&str>,
    ) -> Result<String, crate::ports::pipeline::ExternalError> {
        Ok(Athena::start(self, sql, database, token).await?)
    }

    async fn status(
        &self,
        query_id: &str,
    ) -> Result<QueryStatus, crate::ports::pipeline::ExternalError> {
        Ok(Athena::status(self, query_id).await?)
    }

    async fn wait(
        &self,
        query_id: &str,
        timeout: Duration,
    ) -> Result<QueryStatus, crate::ports::pipeline::ExternalError> {
        Ok(Athena::wait(self, query_id, timeout).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_athena::operation::get_query_execution::GetQueryExecutionOutput;
    use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionOutput;
    use aws_sdk_athena::types::{AthenaError, QueryExecution, QueryExecutionStatus};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn execution(state: QueryExecutionState, reason: Option<&str>) -> GetQueryExecutionOutput {
        let mut status = QueryExecutionStatus::builder().state(state);
        if let Some(reason) = reason {
            status = status.athena_error(AthenaError::builder().error_message(reason).build());
        }
        GetQueryExecutionOutput::builder()
            .query_execution(
                QueryExecution::builder()
                    .query_execution_id("q-1")
                    .status(status.build())
                    .result_configuration(
                        ResultConfiguration::builder()
                            .output_location("s3://results/q-1.csv")
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_failed_query_reports_athenas_reason() {
        let rule = mock!(Client::get_query_execution).then_output(|| {
            execution(
                QueryExecutionState::Failed,
                Some("TABLE_NOT_FOUND: line 1:8: Table 'cur.report' does not exist"),
            )
        });
        let client = mock_client!(aws_sdk_athena, RuleMode::Sequential, [&rule]);
        let status = Athena::new(client, "kubecur", None)
            .status("q-1")
            .await
            .expect("answered");
        assert_eq!(status.state, QueryState::Failed);
        assert!(status.reason.is_some_and(|r| r.contains("TABLE_NOT_FOUND")));
    }

    #[tokio::test]
    async fn wait_polls_until_the_query_ends() {
        let rule = mock!(Client::get_query_execution)
            .sequence()
            .output(|| execution(QueryExecutionState::Queued, None))
            .output(|| execution(QueryExecutionState::Running, None))
            .output(|| execution(QueryExecutionState::Succeeded, None))
            .build();
        let client = mock_client!(aws_sdk_athena, RuleMode::Sequential, [&rule]);
        let status = Athena::new(client, "kubecur", None)
            .wait("q-1", Duration::from_secs(30))
            .await
            .expect("ended");
        assert_eq!(status.state, QueryState::Succeeded);
        assert_eq!(
            status.output_location.as_deref(),
            Some("s3://results/q-1.csv")
        );
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn start_sends_the_idempotency_token_and_workgroup() {
        let rule = mock!(Client::start_query_execution)
            .match_requests(|req| {
                req.client_request_token() == Some("kubecur-0123456789abcdef0123456789abcdef")
                    && req.work_group() == Some("kubecur")
                    && req.result_configuration().is_none()
            })
            .then_output(|| {
                StartQueryExecutionOutput::builder()
                    .query_execution_id("q-9")
                    .build()
            });
        let client = mock_client!(aws_sdk_athena, RuleMode::Sequential, [&rule]);
        let id = Athena::new(client, "kubecur", None)
            .start(
                "SELECT 1",
                "cur",
                Some("kubecur-0123456789abcdef0123456789abcdef"),
            )
            .await
            .expect("started");
        assert_eq!(id, "q-9");
    }
}
