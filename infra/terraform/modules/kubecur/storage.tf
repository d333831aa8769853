# Storage: the KMS key, the Athena results bucket and workgroup, the DynamoDB table, and optionally the
# Glue database and CUR table.

# ---------------------------------------------------------------------------------------------------
# KMS key for the DynamoDB table and the CloudWatch log groups.
# In a key policy, "Resource": "*" means "this key" (the policy is attached to one key): AWS KMS
# Developer Guide, "Key policies in AWS KMS" https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html
# Administration is granted to the account (so IAM policies can delegate it) with explicit action
# lists: no "*" in any action (no "kms:*", and none of the console's "kms:Create*"-style wildcards).
# The functions' roles get DynamoDB-only use through their IAM policies (iam.tf, statement
# TableKeyViaDynamoDB); CloudWatch Logs gets use restricted to kubecur's log groups:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
# The explicit lists are the expansions AWS documents for the console's default key policy ("Allows key
# administrators to administer the KMS key" and "Allows key users to use the KMS key"):
# https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
# for a single-Region symmetric encryption key with AWS-generated key material (this key). Left out
# because they cannot apply to such a key: kms:UpdatePrimaryRegion / kms:ReplicateKey (multi-Region
# keys), kms:ImportKeyMaterial / kms:GetParametersForImport / kms:DeleteImportedKeyMaterial (imported
# material), kms:GetPublicKey (asymmetric keys).
# ---------------------------------------------------------------------------------------------------
resource "aws_kms_key" "kubecur" {
  description             = "kubecur: DynamoDB table and CloudWatch log groups of ${var.name_prefix}"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action = [
          "kms:CreateAlias",
          "kms:CreateGrant",
          "kms:DescribeKey",
          "kms:EnableKey",
          "kms:EnableKeyRotation",
          "kms:ListGrants",
          "kms:ListKeyPolicies",
          "kms:ListKeyRotations",
          "kms:ListResourceTags",
          "kms:PutKeyPolicy",
          "kms:UpdateAlias",
          "kms:UpdateKeyDescription",
          "kms:RevokeGrant",
          "kms:DisableKey",
          "kms:DisableKeyRotation",
          "kms:GetKeyPolicy",
          "kms:GetKeyRotationStatus",
          "kms:DeleteAlias",
          "kms:TagResource",
          "kms:UntagResource",
          "kms:ScheduleKeyDeletion",
          "kms:CancelKeyDeletion",
          "kms:RotateKeyOnDemand",
        ]
        Resource = "*"
      },
      {
        # Lets IAM policies in this account grant use of the key (the functions' roles do, via
        # DynamoDB only).
        Sid       = "AccountDelegatesUseToIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action = [
          "kms:Encrypt",
          "kms:Decrypt",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
          "kms:GenerateDataKeyPair",
          "kms:GenerateDataKeyPairWithoutPlaintext",
          "kms:CreateGrant",
          "kms:DescribeKey",
        ]
        Resource = "*"
      },
      {
        Sid       = "CloudWatchLogsUseForKubecurLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        # The CloudWatch Logs guide's "kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*",
        # "kms:GenerateDataKey*", "kms:Describe*", written out for a symmetric key; the data key *pair*
        # actions are left out (CloudWatch Logs encrypts with symmetric data keys).
        Action = [
          "kms:Encrypt",
          "kms:Decrypt",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
          "kms:DescribeKey",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = [
              "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/lambda/${var.name_prefix}-*",
              "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/apigateway/${var.name_prefix}-*",
            ]
          }
        }
      },
    ]
  })

  tags = local.tags
}

resource "aws_kms_alias" "kubecur" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.kubecur.key_id
}

# ---------------------------------------------------------------------------------------------------
# Athena results bucket (kubecur-owned). Query results are transient: they expire after
# results_expiration_days. Athena writes them with SSE-S3 (the workgroup enforces it).
# ---------------------------------------------------------------------------------------------------
resource "aws_s3_bucket" "athena_results" {
  #checkov:skip=CKV_AWS_18: Transient Athena query results that expire in days; access is audited by CloudTrail, and a log bucket would need its own log bucket.
  #checkov:skip=CKV_AWS_144: Cross-region replication of transient query results (re-creatable by re-running the query) adds cost and no recovery value.
  #checkov:skip=CKV_AWS_145: SSE-S3 by design: the workgroup enforces SSE_S3 for results; SSE-KMS would add KMS calls and key grants to every Athena write and read.
  #checkov:skip=CKV2_AWS_62: Nothing consumes object events of this bucket; query completion is signalled by Athena's own EventBridge event.
  bucket        = local.results_bucket_name
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "athena_results" {
  bucket                  = aws_s3_bucket.athena_results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Versioning is on (recovery from an accidental overwrite); old versions expire after a day, so the
# results bucket does not grow.
resource "aws_s3_bucket_versioning" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  rule {
    id     = "expire-query-results"
    status = "Enabled"
    filter {}

    expiration {
      days = var.results_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.athena_results]
}

# The one "*" in an action in infra/: "s3:*" in this DENY statement of a bucket (resource) policy. It
# grants nothing; listing actions instead would leave every unlisted and future S3 action allowed over
# plain HTTP. It is the form AWS and CIS give for "deny HTTP requests": S3 User Guide, "Security best
# practices for Amazon S3" https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html
# and CIS AWS Foundations Benchmark control 2.1.1. No Allow statement anywhere has a "*" action.
data "aws_iam_policy_document" "athena_results_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.athena_results.arn,
      "${aws_s3_bucket.athena_results.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  policy = data.aws_iam_policy_document.athena_results_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.athena_results]
}

# ---------------------------------------------------------------------------------------------------
# Athena workgroup: its configuration is enforced, so the functions pass no ResultConfiguration
# (KUBECUR_ATHENA_OUTPUT stays unset).
# ---------------------------------------------------------------------------------------------------
resource "aws_athena_workgroup" "kubecur" {
  name          = var.name_prefix
  description   = "kubecur allocation and partition queries"
  state         = "ENABLED"
  force_destroy = true

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query

    result_configuration {
      output_location = "s3://${aws_s3_bucket.athena_results.bucket}/athena/"
      encryption_configuration {
        encryption_option = "SSE_S3"
      }
    }
  }

  tags = local.tags
}

# ---------------------------------------------------------------------------------------------------
# DynamoDB table (docs/dynamodb.md): runs, query index, period pointers, snapshot groups.
# ---------------------------------------------------------------------------------------------------
resource "aws_dynamodb_table" "kubecur" {
  name                        = var.name_prefix
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = true

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.kubecur.arn
  }

  tags = local.tags
}

# ---------------------------------------------------------------------------------------------------
# Optional Glue database and CUR 2.0 / FOCUS table, partitioned by billing_period (the export's
# BILLING_PERIOD=YYYY-MM folders; Glue lower-cases the key). The ingest adds partitions with
# ALTER TABLE ADD IF NOT EXISTS PARTITION as deliveries arrive.
# ---------------------------------------------------------------------------------------------------
locals {
  # Columns kubecur reads (and a few for context). Parquet columns are matched by name, so a subset of
  # the export's schema is valid; columns absent from a file read as NULL.
  # CUR 2.0 types: AWS Data Exports, "CUR 2.0 table dictionary" (costs are double, maps are string maps
  # except discount). https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2.html
  cur2_columns = {
    bill_payer_account_id                                           = "string"
    bill_billing_period_start_date                                  = "timestamp"
    line_item_usage_account_id                                      = "string"
    line_item_line_item_type                                        = "string"
    line_item_usage_start_date                                      = "timestamp"
    line_item_usage_end_date                                        = "timestamp"
    line_item_product_code                                          = "string"
    line_item_operation                                             = "string"
    line_item_resource_id                                           = "string"
    line_item_unblended_cost                                        = "double"
    line_item_net_unblended_cost                                    = "double"
    reservation_reservation_a_r_n                                   = "string"
    reservation_effective_cost                                      = "double"
    reservation_net_effective_cost                                  = "double"
    reservation_unused_amortized_upfront_fee_for_billing_period     = "double"
    reservation_net_unused_amortized_upfront_fee_for_billing_period = "double"
    reservation_unused_recurring_fee                                = "double"
    reservation_net_unused_recurring_fee                            = "double"
    savings_plan_savings_plan_effective_cost                        = "double"
    savings_plan_net_savings_plan_effective_cost                    = "double"
    savings_plan_total_commitment_to_date                           = "double"
    savings_plan_used_commitment                                    = "double"
    resource_tags                                                   = "map<string,string>"
    cost_category                                                   = "map<string,string>"
    product                                                         = "map<string,string>"
    discount                                                        = "map<string,double>"
  }
  # FOCUS 1.0 export (AWS columns prefixed x_). Types of the cost columns in AWS's Parquet files are
  # not verified here: check them against your export and override with glue_table_columns if needed.
  # https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-focus-1-0-aws.html
  focus_columns = {
    billingaccountid  = "string"
    subaccountid      = "string"
    chargecategory    = "string"
    chargeperiodstart = "timestamp"
    chargeperiodend   = "timestamp"
    servicename       = "string"
    resourceid        = "string"
    billedcost        = "double"
    effectivecost     = "double"
    listcost          = "double"
    tags              = "map<string,string>"
    x_servicecode     = "string"
    x_operation       = "string"
  }
  glue_columns = coalesce(var.glue_table_columns, var.glue_table_format == "focus" ? local.focus_columns : local.cur2_columns)
}

resource "aws_glue_catalog_database" "cur" {
  count = var.create_glue_table && var.create_glue_database ? 1 : 0
  name  = var.glue_database
}

resource "aws_glue_catalog_table" "cur" {
  count         = var.create_glue_table ? 1 : 0
  name          = var.glue_table
  database_name = var.create_glue_database ? aws_glue_catalog_database.cur[0].name : var.glue_database
  table_type    = "EXTERNAL_TABLE"
  description   = "${var.glue_table_format == "focus" ? "FOCUS" : "CUR 2.0"} export at s3://${var.cur_bucket_name}/${var.cur_prefix}data/ (created by kubecur)"

  parameters = {
    EXTERNAL              = "TRUE"
    classification        = "parquet"
    "parquet.compression" = "SNAPPY"
  }

  partition_keys {
    name = "billing_period"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${var.cur_bucket_name}/${var.cur_prefix}data/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "serialization.format" = "1"
      }
    }

    dynamic "columns" {
      for_each = local.glue_columns
      content {
        name = columns.key
        type = columns.value
      }
    }
  }
}
