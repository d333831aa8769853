//! Athena: start a query (idempotently), wait for it, read its state and output location.

use super::retry::Backoff;
use super::AwsError;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use aws_sdk_athena::Client;
use std::time::Duration;

/// A query's state as kubecur acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl QueryState {
    /// From the state names of the API and of the `Athena Query State Change` event.
    pub fn parse(text: &str) -> Option<QueryState> {
        match text {
            "QUEUED" | "RUNNING" => Some(QueryState::Running),
            "SUCCEEDED" => Some(QueryState::Succeeded),
            "FAILED" => Some(QueryState::Failed),
            "CANCELLED" => Some(QueryState::Cancelled),
            _ => None,
        }
    }
}

/// What `GetQueryExecution` says about a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryStatus {
    pub state: QueryState,
    /// Why it failed or was cancelled (`StateChangeReason`, else the Athena error message).
    pub reason: Option<String>,
    /// `s3://…/<query id>.csv`: the result as one CSV object.
    pub output_location: Option<String>,
}

/// Athena in one workgroup.
#[derive(Debug, Clone)]
pub struct Athena {
    client: Client,
    workgroup: String,
    /// Explicit result location; `None` when the workgroup's enforced configuration sets it
    /// (a workgroup with managed query results rejects an explicit one, billing-data.md §4).
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
    /// run returns the first query instead of starting another (`ClientRequestToken`).
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
