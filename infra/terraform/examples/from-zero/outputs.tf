output "api_endpoint" {
  description = "Base URL of the kubecur API (SigV4-signed requests, e.g. with awscurl --service execute-api)."
  value       = module.kubecur.api_endpoint
}

output "export_name" {
  description = "The CUR 2.0 Data Export."
  value       = module.billing.export_name
}

output "cur_location" {
  description = "Where the export lands."
  value       = "s3://${module.billing.bucket_name}/${module.billing.cur_prefix}"
}
