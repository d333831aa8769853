# Inputs of the billing side. Everything is optional except the bucket name; the defaults make the
# export kubecur reads best: CUR 2.0, Parquet, resource ids on, one partition per month (overwrite).

variable "name_prefix" {
  description = "Prefix of the names this module makes (the export is <name_prefix>-cur2 unless export_name is set)."
  type        = string
  default     = "kubecur"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-24 characters of lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "bucket_name" {
  description = "S3 bucket that receives the export. Created by this module when create_bucket is true (the default); otherwise it must exist and carry the Data Exports bucket policy (README)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters: lower-case letters, digits, dots, hyphens)."
  }
}

variable "create_bucket" {
  description = "Create bucket_name with its Data Exports policy, encryption, public access block and S3 -> EventBridge notifications on. false: bring your own bucket (its policy and EventBridge switch are then yours to set)."
  type        = bool
  default     = true
}

variable "s3_prefix" {
  description = "Key prefix the export writes under, without a trailing '/'. Data lands at <s3_prefix>/<export_name>/data/BILLING_PERIOD=YYYY-MM/."
  type        = string
  default     = "cur"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.s3_prefix))
    error_message = "s3_prefix must be one or more '/'-separated segments of letters, digits and !_.*'()- (no leading or trailing '/')."
  }
}

variable "export_name" {
  description = "Name of the CUR 2.0 Data Export. null: <name_prefix>-cur2."
  type        = string
  default     = null

  validation {
    # Data Exports API, Export.Name: 1-128 characters of [0-9A-Za-z!-_.*'()].
    # https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_bcm-data-exports_Export.html
    condition     = var.export_name == null || can(regex("^[0-9A-Za-z!_.*'()-]{1,128}$", var.export_name))
    error_message = "export_name must be 1-128 characters of letters, digits and !_.*'()-."
  }
}

variable "time_granularity" {
  description = "Line item granularity of the export: DAILY (default; kubecur allocates per day, and daily files are ~24x smaller than hourly) or HOURLY."
  type        = string
  default     = "DAILY"

  validation {
    condition     = contains(["DAILY", "HOURLY"], var.time_granularity)
    error_message = "time_granularity must be \"DAILY\" or \"HOURLY\"."
  }
}

variable "activate_tag_keys" {
  description = "Cost allocation tag keys to activate (e.g. the kubernetes_* keys). Leave empty on the first apply: AWS refuses a key it has not yet seen on a resource (up to 24 h after first use). `aws ce list-cost-allocation-tags --region us-east-1` lists the keys AWS has seen (as Inactive); put those here and apply again."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for key in var.activate_tag_keys : length(key) >= 1 && length(key) <= 1024])
    error_message = "activate_tag_keys entries must be 1-1024 characters."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
