variable "region" {
  description = "Region of the CUR bucket, the Glue catalog and Athena (kubecur deploys there)."
  type        = string
  default     = "us-east-1"
}

variable "cur_bucket_name" {
  description = "Existing bucket receiving the CUR / Data Export."
  type        = string
}

variable "cur_prefix" {
  description = "Key prefix of the export, ending with '/'."
  type        = string
  default     = "cur/kubecur-export/"
}

variable "glue_database" {
  description = "Glue database of the CUR table."
  type        = string
  default     = "cur"
}

variable "glue_table" {
  description = "Glue table of the CUR."
  type        = string
  default     = "kubecur_export"
}

variable "architecture" {
  description = "arm64 (default, cargo lambda build --arm64) or x86_64 (--x86-64)."
  type        = string
  default     = "arm64"
}

variable "alarm_email_topic_arn" {
  description = "Optional SNS topic ARN notified by the alarms (empty: no notification)."
  type        = string
  default     = ""
}
