output "api_endpoint" {
  description = "Base URL of the HTTP API (GET <url>/allocation, GET <url>/status); requests are SigV4-signed (AWS_IAM) or carry a JWT."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "api_execution_arn" {
  description = "Execution ARN of the HTTP API, for IAM policies granting execute-api:Invoke to callers (e.g. <arn>/*/GET/allocation)."
  value       = aws_apigatewayv2_api.kubecur.execution_arn
}

output "table_name" {
  description = "DynamoDB table (KUBECUR_TABLE)."
  value       = aws_dynamodb_table.kubecur.name
}

output "athena_workgroup" {
  description = "Athena workgroup (KUBECUR_ATHENA_WORKGROUP)."
  value       = aws_athena_workgroup.kubecur.name
}

output "athena_results_bucket" {
  description = "kubecur-owned bucket holding Athena query results."
  value       = aws_s3_bucket.athena_results.bucket
}

output "function_names" {
  description = "Function names by role."
  value = {
    cur_ingest        = aws_lambda_function.cur_ingest.function_name
    allocation_writer = aws_lambda_function.allocation_writer.function_name
    allocation_api    = aws_lambda_function.allocation_api.function_name
  }
}

output "role_arns" {
  description = "Execution role ARNs by function."
  value = {
    cur_ingest        = aws_iam_role.cur_ingest.arn
    allocation_writer = aws_iam_role.allocation_writer.arn
    allocation_api    = aws_iam_role.allocation_api.arn
  }
}

output "failure_queue_urls" {
  description = "SQS queues holding events that failed for good: the two on-failure destinations and the EventBridge dead-letter queue."
  value = {
    cur_ingest        = aws_sqs_queue.cur_ingest_failures.url
    allocation_writer = aws_sqs_queue.allocation_writer_failures.url
    eventbridge       = aws_sqs_queue.events_dlq.url
  }
}

output "kms_key_arn" {
  description = "KMS key encrypting the DynamoDB table and the log groups."
  value       = aws_kms_key.kubecur.arn
}

output "bucket_eventbridge_managed" {
  description = "Whether this module turned on S3 -> EventBridge for the CUR bucket (false: do it as README.md says)."
  value       = var.enable_bucket_eventbridge
}
