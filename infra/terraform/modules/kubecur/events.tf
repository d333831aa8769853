# Triggers: S3 "Object Created" events of the CUR prefix (through EventBridge) -> cur_ingest, and
# Athena "Query State Change" events of the kubecur workgroup -> allocation_writer.

# ---------------------------------------------------------------------------------------------------
# S3 -> EventBridge on the CUR bucket.
#
# PutBucketNotificationConfiguration "replaces the existing notification configuration with the
# configuration you include in the request body" (Amazon S3 API Reference,
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketNotificationConfiguration.html), and
# aws_s3_bucket_notification manages the whole configuration the same way. AWS's CUR crawler template
# (legacy CUR + Athena integration) installs its own Lambda notification on the bucket; replacing it
# would stop the crawler. So this resource exists only when enable_bucket_eventbridge = true, which is
# safe only for a bucket WITHOUT other notifications.
#
# To enable EventBridge without dropping existing targets ("Enabling Amazon EventBridge", Amazon S3 User
# Guide, https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-event-notifications-eventbridge.html):
# - S3 console: bucket > Properties > Event notifications > Amazon EventBridge > Edit > On. The console
#   keeps the other notification entries.
# - CLI: read the configuration, add "EventBridgeConfiguration": {} to it, and write it back whole:
#     aws s3api get-bucket-notification-configuration --bucket BUCKET > notif.json
#     jq '. + {EventBridgeConfiguration: {}}' notif.json > notif-eb.json
#     aws s3api put-bucket-notification-configuration --bucket BUCKET \
#       --notification-configuration file://notif-eb.json --skip-destination-validation
# README.md (this directory's parent) walks through both.
# ---------------------------------------------------------------------------------------------------
resource "aws_s3_bucket_notification" "cur_eventbridge" {
  count       = var.enable_bucket_eventbridge ? 1 : 0
  bucket      = var.cur_bucket_name
  eventbridge = true
}

resource "aws_cloudwatch_event_rule" "cur_delivery" {
  name        = "${var.name_prefix}-cur-delivery"
  description = "kubecur: objects created under s3://${var.cur_bucket_name}/${var.cur_prefix}"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [var.cur_bucket_name] }
      object = { key = [{ prefix = var.cur_prefix }] }
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_rule" "athena_query_state" {
  name        = "${var.name_prefix}-athena-query-state"
  description = "kubecur: final states of queries in the ${var.name_prefix} Athena workgroup"
  event_pattern = jsonencode({
    source        = ["aws.athena"]
    "detail-type" = ["Athena Query State Change"]
    detail = {
      workgroupName = [aws_athena_workgroup.kubecur.name]
      currentState  = ["SUCCEEDED", "FAILED", "CANCELLED"]
    }
  })
  tags = local.tags
}

# Events EventBridge could not deliver (after its retries) land here.
resource "aws_sqs_queue" "events_dlq" {
  name                      = "${var.name_prefix}-events-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

data "aws_iam_policy_document" "events_dlq" {
  statement {
    sid       = "EventBridgeRulesSendUndelivered"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values = [
        aws_cloudwatch_event_rule.cur_delivery.arn,
        aws_cloudwatch_event_rule.athena_query_state.arn,
      ]
    }
  }
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = data.aws_iam_policy_document.events_dlq.json
}

resource "aws_cloudwatch_event_target" "cur_ingest" {
  rule      = aws_cloudwatch_event_rule.cur_delivery.name
  target_id = "cur-ingest"
  arn       = aws_lambda_function.cur_ingest.arn

  retry_policy {
    maximum_event_age_in_seconds = 21600
    maximum_retry_attempts       = 20
  }
  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

resource "aws_cloudwatch_event_target" "allocation_writer" {
  rule      = aws_cloudwatch_event_rule.athena_query_state.name
  target_id = "allocation-writer"
  arn       = aws_lambda_function.allocation_writer.arn

  retry_policy {
    maximum_event_age_in_seconds = 21600
    maximum_retry_attempts       = 20
  }
  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

resource "aws_lambda_permission" "cur_ingest_from_events" {
  statement_id  = "AllowCurDeliveryRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.cur_ingest.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.cur_delivery.arn
}

resource "aws_lambda_permission" "allocation_writer_from_events" {
  statement_id  = "AllowAthenaQueryStateRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.allocation_writer.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.athena_query_state.arn
}
