output "bucket_name" {
  description = "The export bucket (modules/kubecur's cur_bucket_name)."
  value       = var.create_bucket ? aws_s3_bucket.export[0].bucket : var.bucket_name
}

output "cur_prefix" {
  description = "The export's folder in the bucket, <s3_prefix>/<export_name>/ (modules/kubecur's cur_prefix)."
  value       = local.cur_prefix
}

output "export_name" {
  description = "Name of the CUR 2.0 Data Export."
  value       = local.export_name
}

output "export_arn" {
  description = "ARN of the CUR 2.0 Data Export."
  value       = aws_bcmdataexports_export.cur2.export[0].export_arn
}

output "activated_tag_keys" {
  description = "Cost allocation tag keys this apply activated."
  value       = sort(keys(aws_ce_cost_allocation_tag.kubernetes))
}
