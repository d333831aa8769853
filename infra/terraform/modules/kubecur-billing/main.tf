# kubecur's billing side, for an account that has no export yet: the S3 bucket, a CUR 2.0 Data Export
# into it (Parquet, resource ids, overwrite), S3 -> EventBridge on, and optionally the activation of
# cost allocation tags. Use it with modules/kubecur (examples/from-zero wires the two together).
#
# Partitions: the export writes BILLING_PERIOD=YYYY-MM folders; modules/kubecur's Glue table is
# partitioned by billing_period and kubecur's ingest adds each month's partition with
# ALTER TABLE ADD IF NOT EXISTS PARTITION when the month's manifest arrives. That one mechanism serves
# both new and existing tables (crawler-made ones included), so no partition projection here: with
# projection on, Athena would ignore the partitions the ingest adds.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account     = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  export_name = coalesce(var.export_name, "${var.name_prefix}-cur2")
  bucket_arn  = "arn:${local.partition}:s3:::${var.bucket_name}"

  # What modules/kubecur takes as cur_prefix: the export's own folder.
  # Layout (AWS CUR User Guide, "Data export delivery"):
  #   <s3_prefix>/<export_name>/data/BILLING_PERIOD=YYYY-MM/…parquet
  #   <s3_prefix>/<export_name>/metadata/BILLING_PERIOD=YYYY-MM/<export_name>-Manifest.json
  # https://docs.aws.amazon.com/cur/latest/userguide/dataexports-export-delivery.html
  cur_prefix = "${var.s3_prefix}/${local.export_name}/"

  # The columns the export delivers: exactly the columns modules/kubecur's Glue table declares for
  # CUR 2.0 (tests/tests/infra_billing.rs checks the two lists agree). Data Exports refuses SELECT *;
  # CUR 2.0 has a fixed schema, so every column exists whether or not the account bought RIs or SPs.
  # Column names and types: "CUR 2.0 table dictionary"
  # https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2.html
  export_columns = [
    "bill_payer_account_id",
    "bill_billing_period_start_date",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_product_code",
    "line_item_operation",
    "line_item_resource_id",
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "reservation_reservation_a_r_n",
    "reservation_effective_cost",
    "reservation_net_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_net_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "reservation_net_unused_recurring_fee",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_net_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "resource_tags",
    "cost_category",
    "product",
    "discount",
  ]

  tags = merge({ "app" = "kubecur" }, var.tags)
}

# ---------------------------------------------------------------------------------------------------
# The export bucket (create_bucket). Data Exports writes with SSE-S3; versioning guards against an
# accidental delete; old versions of overwritten reports expire after 7 days.
# ---------------------------------------------------------------------------------------------------
resource "aws_s3_bucket" "export" {
  #checkov:skip=CKV_AWS_18: Billing exports are written by AWS's own service; access is audited by CloudTrail, and a log bucket would need its own log bucket.
  #checkov:skip=CKV_AWS_144: Cross-region replication of an export AWS can redeliver (it rewrites every open month) adds cost and no recovery value.
  #checkov:skip=CKV_AWS_145: SSE-S3 by design: Data Exports delivers to SSE-S3 buckets without extra key grants; SSE-KMS would need a key policy for the billing service principal.
  count         = var.create_bucket ? 1 : 0
  bucket        = var.bucket_name
  force_destroy = false
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "export" {
  count                   = var.create_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.export[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "export" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.export[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "export" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.export[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "export" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.export[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "export" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.export[0].id

  rule {
    id     = "expire-replaced-report-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.export]
}

# The bucket policy AWS documents for Data Exports: the service may put objects and read the policy,
# only for exports of this account (aws:SourceAccount, aws:SourceArn). The legacy CUR principal
# (billingreports.amazonaws.com) is not granted: this bucket receives the CUR 2.0 export only.
# AWS CUR User Guide, "Setting up an Amazon S3 bucket for data exports"
# https://docs.aws.amazon.com/cur/latest/userguide/dataexports-s3-bucket.html
# The Deny of plain-HTTP requests uses "s3:*" as in modules/kubecur/storage.tf (it grants nothing).
data "aws_iam_policy_document" "export_bucket" {
  statement {
    sid       = "DataExportsWritesAndChecksPolicy"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:GetBucketPolicy"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
    principals {
      type        = "Service"
      identifiers = ["bcm-data-exports.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:bcm-data-exports:us-east-1:${local.account}:export/*"]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
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

resource "aws_s3_bucket_policy" "export" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.export[0].id
  policy = data.aws_iam_policy_document.export_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.export]
}

# kubecur's ingest listens to S3's EventBridge events. This resource owns the bucket's whole
# notification configuration, which is safe here because this module made the bucket.
resource "aws_s3_bucket_notification" "export" {
  count       = var.create_bucket ? 1 : 0
  bucket      = aws_s3_bucket.export[0].id
  eventbridge = true
}

# ---------------------------------------------------------------------------------------------------
# The CUR 2.0 Data Export. Table configuration values: Data Exports table dictionary, "Cost and usage
# report 2.0" (https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2.html); the
# provider requires all of them once one is set, BILLING_VIEW_ARN included
# (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/bcmdataexports_export).
# INCLUDE_SPLIT_COST_ALLOCATION_DATA stays FALSE: kubecur excludes EKS split rows anyway, and they
# multiply the export's size.
# ---------------------------------------------------------------------------------------------------
resource "aws_bcmdataexports_export" "cur2" {
  provider = aws.us_east_1

  export {
    name        = local.export_name
    description = "CUR 2.0 for kubecur: Parquet, resource ids, one overwritten partition per month"

    data_query {
      query_statement = "SELECT ${join(", ", local.export_columns)} FROM COST_AND_USAGE_REPORT"
      table_configurations = {
        COST_AND_USAGE_REPORT = {
          BILLING_VIEW_ARN                      = "arn:${local.partition}:billing::${local.account}:billingview/primary"
          TIME_GRANULARITY                      = var.time_granularity
          INCLUDE_RESOURCES                     = "TRUE"
          INCLUDE_MANUAL_DISCOUNT_COMPATIBILITY = "FALSE"
          INCLUDE_SPLIT_COST_ALLOCATION_DATA    = "FALSE"
        }
      }
    }

    destination_configurations {
      s3_destination {
        s3_bucket = var.bucket_name
        s3_prefix = var.s3_prefix
        s3_region = data.aws_region.current.name
        s3_output_configurations {
          format      = "PARQUET"
          compression = "PARQUET"
          output_type = "CUSTOM"
          overwrite   = "OVERWRITE_REPORT"
        }
      }
    }

    refresh_cadence {
      frequency = "SYNCHRONOUS"
    }
  }

  tags = local.tags

  # The service checks the bucket policy when the export is created.
  depends_on = [aws_s3_bucket_policy.export]
}

# ---------------------------------------------------------------------------------------------------
# Cost allocation tags: only the keys listed in activate_tag_keys (empty by default). AWS refuses to
# activate a key it has not yet seen on a resource, which would fail a fresh account's first apply;
# `aws ce list-cost-allocation-tags` lists the keys AWS has seen (as Inactive). Activation is only possible from the management
# (payer) or a standalone account.
# https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html
# ---------------------------------------------------------------------------------------------------
resource "aws_ce_cost_allocation_tag" "kubernetes" {
  for_each = toset(var.activate_tag_keys)
  tag_key  = each.value
  status   = "Active"
}
