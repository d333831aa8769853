# Inputs. The names match the SAM template's parameters (snake_case here, PascalCase there).

variable "name_prefix" {
  description = "Prefix of every resource name (functions, table, workgroup, queues, roles). Lower case letters, digits and hyphens."
  type        = string
  default     = "kubecur"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-24 characters of lower-case letters, digits and hyphens, starting with a letter (the results bucket name <prefix>-athena-<account>-<region> must fit S3's 63 characters)."
  }
}

variable "cur_bucket_name" {
  description = "Name of the EXISTING S3 bucket that receives the Cost and Usage Report / Data Export. kubecur only reads from it."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.cur_bucket_name))
    error_message = "cur_bucket_name must be a valid S3 bucket name (3-63 characters: lower-case letters, digits, dots, hyphens)."
  }
}

variable "cur_prefix" {
  description = "Key prefix of the export or report inside the CUR bucket, ending with '/', e.g. \"cur/kubecur-export/\". The ingest function is triggered by, and may only read, objects under it."
  type        = string

  validation {
    condition     = length(var.cur_prefix) > 1 && endswith(var.cur_prefix, "/") && !startswith(var.cur_prefix, "/") && !strcontains(var.cur_prefix, "*")
    error_message = "cur_prefix must be a non-empty key prefix ending with '/', not starting with '/', without '*'."
  }
}

variable "glue_database" {
  description = "Glue (Athena) database holding the CUR table. Must exist unless create_glue_database is true."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.glue_database))
    error_message = "glue_database must be lower-case letters, digits and underscores (Glue lower-cases names)."
  }
}

variable "glue_table" {
  description = "Glue (Athena) table of the CUR, read by name. Must exist unless create_glue_table is true."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.glue_table))
    error_message = "glue_table must be lower-case letters, digits and underscores (Glue lower-cases names)."
  }
}

variable "create_glue_table" {
  description = "Create the CUR table (CUR 2.0 or FOCUS export, see glue_table_format) partitioned by billing_period at s3://<cur_bucket_name>/<cur_prefix>data/. Leave false when AWS's crawler or your own DDL already made it."
  type        = bool
  default     = false
}

variable "create_glue_database" {
  description = "Also create the Glue database glue_database (only meaningful with create_glue_table)."
  type        = bool
  default     = false
}

variable "glue_table_format" {
  description = "Schema of the table created when create_glue_table is true: \"cur2\" (CUR 2.0 Data Export) or \"focus\" (FOCUS 1.0 export)."
  type        = string
  default     = "cur2"

  validation {
    condition     = contains(["cur2", "focus"], var.glue_table_format)
    error_message = "glue_table_format must be \"cur2\" or \"focus\"."
  }
}

variable "glue_table_columns" {
  description = "Columns (name => Hive type) of the created table, replacing the built-in list for glue_table_format. Use it to match your export's exact Parquet schema. null keeps the built-in list."
  type        = map(string)
  default     = null
}

variable "lambda_artifacts_dir" {
  description = "Directory holding cargo lambda's output: <dir>/cur-ingest/bootstrap.zip, <dir>/allocation-writer/bootstrap.zip, <dir>/allocation-api/bootstrap.zip (cargo lambda build --release --output-format zip writes target/lambda)."
  type        = string

  validation {
    condition     = length(trimspace(var.lambda_artifacts_dir)) > 0
    error_message = "lambda_artifacts_dir must not be empty."
  }
}

variable "architecture" {
  description = "Instruction set of the functions; must match the build (cargo lambda build --arm64 or --x86-64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "bytes_scanned_cutoff_per_query" {
  description = "Athena workgroup limit: a query scanning more bytes is cancelled (and its run fails). Default 10 GiB."
  type        = number
  default     = 10737418240

  validation {
    # Athena's minimum is 10 MB.
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760 && floor(var.bytes_scanned_cutoff_per_query) == var.bytes_scanned_cutoff_per_query
    error_message = "bytes_scanned_cutoff_per_query must be a whole number of bytes, at least 10485760 (10 MB, Athena's minimum)."
  }
}

variable "tag_keys" {
  description = "Tag key overrides for the ingest, ';'-separated CONCEPT=KEY[,KEY] (as the CLI's --tag-key takes them); becomes KUBECUR_TAG_KEYS. Empty keeps the defaults."
  type        = string
  default     = ""

  validation {
    condition     = var.tag_keys == "" || alltrue([for spec in split(";", var.tag_keys) : trimspace(spec) == "" || can(regex("^[^=]+=.+$", trimspace(spec)))])
    error_message = "tag_keys must be ';'-separated CONCEPT=KEY[,KEY] entries."
  }
}

variable "labels" {
  description = "Further tag keys every run groups by, ','-separated (becomes KUBECUR_LABELS of the ingest and the API): the API then answers aggregate=label:KEY, filterLabels and shareLabels for them, and refuses other keys. Each key can split every group of the snapshot's full level, at most into as many as the key has values. Empty: none."
  type        = string
  default     = ""

  validation {
    # AWS tag keys have at most 128 characters and no control characters.
    condition     = alltrue([for key in split(",", var.labels) : length(trimspace(key)) <= 128 && !can(regex("[[:cntrl:]]", key))])
    error_message = "labels must be ','-separated tag keys of at most 128 characters, without control characters."
  }
}

variable "reconcile_schedule" {
  description = "EventBridge Scheduler expression of the reconciler (docs/pipeline.md): how often recent billing periods are checked for lost events and stuck runs."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.reconcile_schedule))
    error_message = "reconcile_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' and the API's CloudWatch log groups, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "results_expiration_days" {
  description = "Days after which Athena query results expire from the kubecur results bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.results_expiration_days >= 1 && floor(var.results_expiration_days) == var.results_expiration_days
    error_message = "results_expiration_days must be a whole number of days, at least 1."
  }
}

variable "api_authorization" {
  description = "Authorization of the HTTP API routes: \"AWS_IAM\" (SigV4-signed requests, default) or \"JWT\" (needs jwt_issuer and jwt_audience). There is no anonymous option."
  type        = string
  default     = "AWS_IAM"

  validation {
    condition     = contains(["AWS_IAM", "JWT"], var.api_authorization)
    error_message = "api_authorization must be \"AWS_IAM\" or \"JWT\"."
  }
}

variable "jwt_issuer" {
  description = "Issuer URL of the JWT authorizer (api_authorization = \"JWT\"), e.g. https://cognito-idp.<region>.amazonaws.com/<pool id>."
  type        = string
  default     = ""

  validation {
    condition     = var.jwt_issuer == "" || startswith(var.jwt_issuer, "https://")
    error_message = "jwt_issuer must be an https:// URL (or empty when api_authorization is AWS_IAM)."
  }
}

variable "jwt_audience" {
  description = "Accepted audiences (aud / client_id) of the JWT authorizer (api_authorization = \"JWT\")."
  type        = list(string)
  default     = []
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when any kubecur alarm fires or recovers."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.alarm_actions : startswith(arn, "arn:")])
    error_message = "alarm_actions must be ARNs."
  }
}

variable "enable_bucket_eventbridge" {
  description = "Turn on S3 -> EventBridge notifications of the CUR bucket with aws_s3_bucket_notification. DANGER: that resource REPLACES the bucket's whole notification configuration; set true only when the bucket has no other notification (no crawler Lambda, SNS, SQS targets). Otherwise leave false and enable EventBridge as README.md describes."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "api_max_window_days" {
  description = "Longest window one GET /allocation may ask for, in days (refused with 400 beyond it); becomes KUBECUR_API_MAX_WINDOW_DAYS."
  type        = number
  default     = 1096

  validation {
    condition     = var.api_max_window_days >= 1 && var.api_max_window_days <= 36600 && floor(var.api_max_window_days) == var.api_max_window_days
    error_message = "api_max_window_days must be a whole number from 1 to 36600."
  }
}

variable "api_max_steps" {
  description = "Most daily sets (step=1d) one GET /allocation may ask for; becomes KUBECUR_API_MAX_STEPS."
  type        = number
  default     = 366

  validation {
    condition     = var.api_max_steps >= 1 && var.api_max_steps <= 36600 && floor(var.api_max_steps) == var.api_max_steps
    error_message = "api_max_steps must be a whole number from 1 to 36600."
  }
}

variable "api_max_groups" {
  description = "Most groups in one GET /allocation answer (the function's response must stay under Lambda's 6 MB payload limit); becomes KUBECUR_API_MAX_GROUPS."
  type        = number
  default     = 10000

  validation {
    condition     = var.api_max_groups >= 1 && var.api_max_groups <= 10000000 && floor(var.api_max_groups) == var.api_max_groups
    error_message = "api_max_groups must be a whole number from 1 to 10000000."
  }
}

variable "share_rules" {
  description = "Share rules every GET /allocation answer applies, as the JSON of a rules file (README: Shared costs), e.g. jsonencode({ rules = [...] }) or file(\"share-rules.json\"); empty for none. Becomes KUBECUR_SHARE_RULES of the API and the ingest, which keys the resource ids the rules select (Lambda's environment holds at most 4 KB in all)."
  type        = string
  default     = ""

  validation {
    condition     = var.share_rules == "" || can(jsondecode(var.share_rules).rules)
    error_message = "share_rules must be empty or the JSON of a rules file: an object with a rules array."
  }
}
