output "api_endpoint" {
  description = "Base URL of the kubecur API."
  value       = module.kubecur.api_endpoint
}

output "api_execution_arn" {
  description = "Grant callers execute-api:Invoke on <this>/*/GET/allocation and <this>/*/GET/status."
  value       = module.kubecur.api_execution_arn
}

output "table_name" {
  description = "DynamoDB table."
  value       = module.kubecur.table_name
}

output "failure_queue_urls" {
  description = "Queues of events that failed for good."
  value       = module.kubecur.failure_queue_urls
}
