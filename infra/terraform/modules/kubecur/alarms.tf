# Alarms: each function's Errors, each failure/dead-letter queue's visible messages, and failed
# allocation runs (a metric filter on the writer's log line). All notify alarm_actions.

locals {
  function_alarms = {
    cur_ingest        = aws_lambda_function.cur_ingest.function_name
    allocation_writer = aws_lambda_function.allocation_writer.function_name
    allocation_api    = aws_lambda_function.allocation_api.function_name
  }
  queue_alarms = {
    cur_ingest_failures        = aws_sqs_queue.cur_ingest_failures.name
    allocation_writer_failures = aws_sqs_queue.allocation_writer_failures.name
    events_dlq                 = aws_sqs_queue.events_dlq.name
  }
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = local.function_alarms
  alarm_name          = "${each.value}-errors"
  alarm_description   = "kubecur: ${each.value} returned errors (see its log group)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "queue_messages" {
  for_each            = local.queue_alarms
  alarm_name          = "${each.value}-messages"
  alarm_description   = "kubecur: events that failed for good wait in ${each.value}; inspect and redrive them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

# The writer logs exactly "Allocation run failed; the previous snapshot keeps serving." when a query
# failed or was cancelled (shared/src/pipeline/writer.rs).
resource "aws_cloudwatch_log_metric_filter" "failed_allocation_runs" {
  name           = "${var.name_prefix}-failed-allocation-runs"
  log_group_name = aws_cloudwatch_log_group.allocation_writer.name
  pattern        = "\"Allocation run failed\""

  metric_transformation {
    namespace = "kubecur"
    name      = "FailedAllocationRuns"
    value     = "1"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "failed_allocation_runs" {
  alarm_name          = "${var.name_prefix}-failed-allocation-runs"
  alarm_description   = "kubecur: an allocation run failed; the previous snapshot keeps serving. GET /status shows the reason."
  namespace           = "kubecur"
  metric_name         = "FailedAllocationRuns"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags

  depends_on = [aws_cloudwatch_log_metric_filter.failed_allocation_runs]
}
