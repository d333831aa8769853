# One role per function. Every statement names its resources; no "*" action and no "*" resource.
# Action and resource formats: AWS Service Authorization Reference
# (https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html):
# S3 bucket arn:aws:s3:::bucket, object arn:aws:s3:::bucket/key; Athena workgroup
# arn:aws:athena:region:account:workgroup/name; Glue catalog/database/table (see main.tf); DynamoDB table
# arn:aws:dynamodb:region:account:table/name; CloudWatch Logs log stream
# arn:aws:logs:region:account:log-group:name:log-stream:name.
#
# Athena runs each query with the caller's credentials: the ingest role therefore also holds what Athena
# needs for the partition DDL and the SELECT (Glue catalog reads and partition writes, CUR data reads,
# result writes). https://docs.aws.amazon.com/athena/latest/ug/managed-policies.html and
# https://docs.aws.amazon.com/athena/latest/ug/fine-grained-access-to-glue-resources.html

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

locals {
  results_bucket_arn  = aws_s3_bucket.athena_results.arn
  results_objects_arn = "${aws_s3_bucket.athena_results.arn}/athena/*"
  workgroup_arn       = aws_athena_workgroup.kubecur.arn
  table_arn           = aws_dynamodb_table.kubecur.arn
  dynamodb_via        = "dynamodb.${local.region}.amazonaws.com"
}

# ------------------------------------------------------------------------------- cur_ingest
resource "aws_iam_role" "cur_ingest" {
  name               = "${var.name_prefix}-cur-ingest"
  description        = "kubecur cur-ingest function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "cur_ingest" {
  statement {
    sid       = "ReadCurObjects"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.cur_objects_arn]
  }

  statement {
    sid       = "ListCurPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.cur_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.cur_prefix}*"]
    }
  }

  statement {
    sid       = "LocateCurBucket"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.cur_bucket_arn]
  }

  statement {
    sid       = "RunAthenaQueries"
    effect    = "Allow"
    actions   = ["athena:StartQueryExecution", "athena:GetQueryExecution"]
    resources = [local.workgroup_arn]
  }

  # No glue:GetCatalog: Athena's per-statement Glue permissions for the AWS Glue Data Catalog
  # (AwsDataCatalog) list GetDatabase / GetTable / partition actions on catalog, database and table, and
  # no GetCatalog (https://docs.aws.amazon.com/athena/latest/ug/fine-grained-access-to-glue-resources.html).
  # AWS documents glue:GetCatalog for Athena only with Lake Formation / federated data sources
  # (https://docs.aws.amazon.com/athena/latest/ug/connect-to-a-data-source-permissions.html) and in the
  # broad AmazonAthenaFullAccess policy. If a deployment's CloudTrail shows AccessDenied for
  # glue:GetCatalog, add it here on local.glue_catalog_arn only.
  statement {
    sid    = "ReadAndPartitionCurTable"
    effect = "Allow"
    actions = [
      "glue:GetDatabase",
      "glue:GetTable",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:BatchGetPartition",
      "glue:CreatePartition",
      "glue:BatchCreatePartition",
    ]
    resources = [local.glue_catalog_arn, local.glue_database_arn, local.glue_table_arn]
  }

  statement {
    sid    = "WriteAthenaResults"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.results_objects_arn]
  }

  # The bucket-level part of Athena's result-location permissions. s3:ListBucketMultipartUploads is in
  # AWS's own list for the query result location (AmazonAthenaFullAccess, statement
  # BaseQueryResultsPermissions: https://docs.aws.amazon.com/athena/latest/ug/managed-policies.html and
  # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonAthenaFullAccess.html); it is a
  # bucket action, so it goes on the bucket ARN.
  statement {
    sid       = "ListAthenaResultsBucket"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [local.results_bucket_arn]
  }

  # Claims, run records and the pointer's notes; as the reconciler (the schedule's invocation) it also
  # lists a period's runs and finishes stuck runs, which writes snapshots like the writer.
  statement {
    sid    = "ClaimRuns"
    effect = "Allow"
    actions = [
      "dynamodb:PutItem",
      "dynamodb:GetItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
      "dynamodb:BatchWriteItem",
    ]
    resources = [local.table_arn]
  }

  statement {
    sid       = "TableKeyViaDynamoDB"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.kubecur.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.dynamodb_via]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.cur_ingest.arn}:log-stream:*"]
  }

  statement {
    sid       = "SendToOwnFailureQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.cur_ingest_failures.arn]
  }
}

resource "aws_iam_role_policy" "cur_ingest" {
  name   = "${var.name_prefix}-cur-ingest"
  role   = aws_iam_role.cur_ingest.id
  policy = data.aws_iam_policy_document.cur_ingest.json
}

# ------------------------------------------------------------------------------- allocation_writer
resource "aws_iam_role" "allocation_writer" {
  name               = "${var.name_prefix}-allocation-writer"
  description        = "kubecur allocation-writer function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "allocation_writer" {
  statement {
    sid       = "ReadQueryState"
    effect    = "Allow"
    actions   = ["athena:GetQueryExecution"]
    resources = [local.workgroup_arn]
  }

  statement {
    sid       = "ReadQueryResults"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.results_objects_arn]
  }

  statement {
    sid    = "WriteSnapshots"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:Query",
    ]
    resources = [local.table_arn]
  }

  statement {
    sid       = "TableKeyViaDynamoDB"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.kubecur.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.dynamodb_via]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.allocation_writer.arn}:log-stream:*"]
  }

  statement {
    sid       = "SendToOwnFailureQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.allocation_writer_failures.arn]
  }
}

resource "aws_iam_role_policy" "allocation_writer" {
  name   = "${var.name_prefix}-allocation-writer"
  role   = aws_iam_role.allocation_writer.id
  policy = data.aws_iam_policy_document.allocation_writer.json
}

# ------------------------------------------------------------------------------- allocation_api
resource "aws_iam_role" "allocation_api" {
  name               = "${var.name_prefix}-allocation-api"
  description        = "kubecur allocation-api function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "allocation_api" {
  statement {
    sid       = "ReadSnapshots"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = [local.table_arn]
  }

  statement {
    sid       = "TableKeyViaDynamoDB"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [aws_kms_key.kubecur.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.dynamodb_via]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.allocation_api.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "allocation_api" {
  name   = "${var.name_prefix}-allocation-api"
  role   = aws_iam_role.allocation_api.id
  policy = data.aws_iam_policy_document.allocation_api.json
}
