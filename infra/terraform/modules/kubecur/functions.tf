# The three functions (provided.al2023, handler bootstrap), their log groups and failure destinations.
# Each function's environment map is written literally in its own resource (the test that compares
# Terraform, SAM and shared/src/config.rs parses these blocks).
#
# Skips common to all three functions, with their reasons:
# - CKV_AWS_117 (VPC): the functions call only AWS public APIs (S3, Glue, Athena, DynamoDB); a VPC would
#   need NAT or five interface endpoints and adds no data path to protect.
# - CKV_AWS_272 (code signing): the zips are built locally by cargo lambda from this repository; AWS
#   Signer profiles are left to deployments that require them.
# - CKV_AWS_173 (env encryption with a CMK): the variables hold only resource names and a log level, no
#   secrets; Lambda encrypts them at rest with its AWS managed key.
# - CKV_AWS_50 (X-Ray): active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords on "*"
#   (X-Ray supports no resource-level permissions:
#   https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html); kubecur keeps
#   every role free of "*" resources and relies on its logs and alarms instead.
# - CKV_AWS_115 (reserved concurrency): reserving fails on accounts whose concurrency limit is the new
#   account default of 10 (AWS keeps 10 unreserved); the event-driven functions retry on throttling.

resource "aws_cloudwatch_log_group" "cur_ingest" {
  #checkov:skip=CKV_AWS_338: Retention is the log_retention_days variable (default 30 days, the design's choice for operational logs); set 365 or more where policy requires a year.
  name              = "/aws/lambda/${local.cur_ingest_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.kubecur.arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "allocation_writer" {
  #checkov:skip=CKV_AWS_338: Retention is the log_retention_days variable (default 30 days, the design's choice for operational logs); set 365 or more where policy requires a year.
  name              = "/aws/lambda/${local.allocation_writer_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.kubecur.arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "allocation_api" {
  #checkov:skip=CKV_AWS_338: Retention is the log_retention_days variable (default 30 days, the design's choice for operational logs); set 365 or more where policy requires a year.
  name              = "/aws/lambda/${local.allocation_api_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.kubecur.arn
  tags              = local.tags
}

resource "aws_lambda_function" "cur_ingest" {
  #checkov:skip=CKV_AWS_117: Calls only AWS public APIs; a VPC would need NAT or interface endpoints and protects no data path (see the note at the top of this file).
  #checkov:skip=CKV_AWS_272: Zips are built locally by cargo lambda; code signing (AWS Signer) is left to deployments that require it.
  #checkov:skip=CKV_AWS_173: Environment holds resource names and a log level only, no secrets; encrypted at rest with Lambda's AWS managed key.
  #checkov:skip=CKV_AWS_115: Reserved concurrency fails on accounts with the default limit of 10; events are retried on throttling.
  #checkov:skip=CKV_AWS_50: Active X-Ray tracing needs xray:PutTraceSegments on "*" (X-Ray has no resource-level permissions) and is not needed: logs and alarms cover the pipeline.
  #checkov:skip=CKV_AWS_116: Failures go to an SQS on-failure destination (aws_lambda_function_event_invoke_config.cur_ingest), which records the error and the request; a DLQ would duplicate it.
  function_name = local.cur_ingest_name
  description   = "kubecur: CUR delivery -> partition DDL and allocation query in Athena"
  role          = aws_iam_role.cur_ingest.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  timeout       = 300
  memory_size   = 512

  filename         = "${local.artifacts}/cur-ingest/bootstrap.zip"
  source_code_hash = filebase64sha256("${local.artifacts}/cur-ingest/bootstrap.zip")

  environment {
    variables = {
      KUBECUR_TABLE            = aws_dynamodb_table.kubecur.name
      KUBECUR_ATHENA_WORKGROUP = aws_athena_workgroup.kubecur.name
      KUBECUR_ATHENA_DATABASE  = var.glue_database
      KUBECUR_ATHENA_TABLE     = var.glue_table
      KUBECUR_TAG_KEYS         = var.tag_keys
      KUBECUR_LABELS           = var.labels
      KUBECUR_SHARE_RULES      = var.share_rules
      KUBECUR_LOG              = "info"
    }
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.cur_ingest, aws_iam_role_policy.cur_ingest]
}

resource "aws_lambda_function" "allocation_writer" {
  #checkov:skip=CKV_AWS_117: Calls only AWS public APIs; a VPC would need NAT or interface endpoints and protects no data path (see the note at the top of this file).
  #checkov:skip=CKV_AWS_272: Zips are built locally by cargo lambda; code signing (AWS Signer) is left to deployments that require it.
  #checkov:skip=CKV_AWS_173: Environment holds resource names and a log level only, no secrets; encrypted at rest with Lambda's AWS managed key.
  #checkov:skip=CKV_AWS_115: Reserved concurrency fails on accounts with the default limit of 10; events are retried on throttling.
  #checkov:skip=CKV_AWS_50: Active X-Ray tracing needs xray:PutTraceSegments on "*" (X-Ray has no resource-level permissions) and is not needed: logs and alarms cover the pipeline.
  #checkov:skip=CKV_AWS_116: Failures go to an SQS on-failure destination (aws_lambda_function_event_invoke_config.allocation_writer), which records the error and the request; a DLQ would duplicate it.
  function_name = local.allocation_writer_name
  description   = "kubecur: finished Athena query -> snapshot in DynamoDB, pointer flip"
  role          = aws_iam_role.allocation_writer.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  timeout       = 900
  memory_size   = 1024

  filename         = "${local.artifacts}/allocation-writer/bootstrap.zip"
  source_code_hash = filebase64sha256("${local.artifacts}/allocation-writer/bootstrap.zip")

  environment {
    variables = {
      KUBECUR_TABLE            = aws_dynamodb_table.kubecur.name
      KUBECUR_ATHENA_WORKGROUP = aws_athena_workgroup.kubecur.name
      KUBECUR_LOG              = "info"
    }
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.allocation_writer, aws_iam_role_policy.allocation_writer]
}

resource "aws_lambda_function" "allocation_api" {
  #checkov:skip=CKV_AWS_117: Calls only AWS public APIs; a VPC would need NAT or interface endpoints and protects no data path (see the note at the top of this file).
  #checkov:skip=CKV_AWS_272: Zips are built locally by cargo lambda; code signing (AWS Signer) is left to deployments that require it.
  #checkov:skip=CKV_AWS_173: Environment holds resource names and a log level only, no secrets; encrypted at rest with Lambda's AWS managed key.
  #checkov:skip=CKV_AWS_115: Reserved concurrency fails on accounts with the default limit of 10; API Gateway throttling limits the load instead.
  #checkov:skip=CKV_AWS_50: Active X-Ray tracing needs xray:PutTraceSegments on "*" (X-Ray has no resource-level permissions) and is not needed: logs and alarms cover the pipeline.
  #checkov:skip=CKV_AWS_116: Invoked synchronously by API Gateway only; a DLQ applies to asynchronous invocations and would never receive anything.
  function_name = local.allocation_api_name
  description   = "kubecur: read API (GET /allocation, GET /status) over DynamoDB snapshots"
  role          = aws_iam_role.allocation_api.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  timeout       = 29
  memory_size   = 256

  filename         = "${local.artifacts}/allocation-api/bootstrap.zip"
  source_code_hash = filebase64sha256("${local.artifacts}/allocation-api/bootstrap.zip")

  environment {
    variables = {
      KUBECUR_TABLE               = aws_dynamodb_table.kubecur.name
      KUBECUR_LOG                 = "info"
      KUBECUR_API_MAX_WINDOW_DAYS = tostring(var.api_max_window_days)
      KUBECUR_API_MAX_STEPS       = tostring(var.api_max_steps)
      KUBECUR_API_MAX_GROUPS      = tostring(var.api_max_groups)
      KUBECUR_SHARE_RULES         = var.share_rules
      KUBECUR_LABELS              = var.labels
    }
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.allocation_api, aws_iam_role_policy.allocation_api]
}

# ---------------------------------------------------------------------------------------------------
# Asynchronous invocation failures: two retries, events up to 6 h old, then the on-failure
# destination (an SQS queue per event-driven function; the role sends to it, see iam.tf).
# ---------------------------------------------------------------------------------------------------
resource "aws_sqs_queue" "cur_ingest_failures" {
  name                      = "${var.name_prefix}-cur-ingest-failures"
  message_retention_seconds = 1209600 # 14 days, SQS's maximum
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "allocation_writer_failures" {
  name                      = "${var.name_prefix}-allocation-writer-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_lambda_function_event_invoke_config" "cur_ingest" {
  function_name                = aws_lambda_function.cur_ingest.function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.cur_ingest_failures.arn
    }
  }
}

resource "aws_lambda_function_event_invoke_config" "allocation_writer" {
  function_name                = aws_lambda_function.allocation_writer.function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.allocation_writer_failures.arn
    }
  }
}
