variable "region" {
  description = "Region of the export bucket, the Glue catalog, Athena and kubecur's functions."
  type        = string
  default     = "us-east-1"
}

variable "export_bucket_name" {
  description = "Name of the NEW bucket that receives the CUR 2.0 export (globally unique), e.g. \"acme-kubecur-billing\"."
  type        = string
}

variable "activate_tag_keys" {
  description = "Cost allocation tag keys to activate. Empty on the first apply; after AWS has seen the keys (up to 24 h), list them (aws ce list-cost-allocation-tags shows which) and apply again."
  type        = list(string)
  default     = []
}

variable "architecture" {
  description = "Instruction set of the function zips: arm64 (cargo lambda build --arm64) or x86_64."
  type        = string
  default     = "arm64"
}

variable "alarm_topic_arn" {
  description = "SNS topic notified by kubecur's alarms (empty: no notification)."
  type        = string
  default     = ""
}
