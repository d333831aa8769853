# The reconciler: an EventBridge Scheduler schedule invokes cur_ingest with {"kubecur": "reconcile"}
# (docs/pipeline.md). It starts deliveries whose events were lost, resumes runs stuck in a non-final
# state, and logs its counts as CloudWatch Embedded Metric Format (namespace "kubecur"); the alarm
# fires when billing periods stay stale.

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    sid     = "SchedulerAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "reconcile_schedule" {
  name               = "${var.name_prefix}-reconcile-schedule"
  description        = "kubecur reconciler schedule: invokes cur-ingest"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "reconcile_schedule" {
  statement {
    sid       = "InvokeCurIngest"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.cur_ingest.arn]
  }
}

resource "aws_iam_role_policy" "reconcile_schedule" {
  name   = "${var.name_prefix}-reconcile-schedule"
  role   = aws_iam_role.reconcile_schedule.id
  policy = data.aws_iam_policy_document.reconcile_schedule.json
}

resource "aws_scheduler_schedule" "reconcile" {
  #checkov:skip=CKV_AWS_297: The only payload is the constant {"kubecur":"reconcile"}; EventBridge Scheduler encrypts it at rest with an AWS owned key (https://docs.aws.amazon.com/scheduler/latest/UserGuide/encryption-rest.html), and a CMK would add a key grant for nothing secret.
  name                = "${var.name_prefix}-reconcile"
  description         = "kubecur: reconcile recent billing periods (lost events, stuck runs)"
  schedule_expression = var.reconcile_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.cur_ingest.arn
    role_arn = aws_iam_role.reconcile_schedule.arn
    input    = jsonencode({ kubecur = "reconcile" })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 2
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "stale_periods" {
  alarm_name          = "${var.name_prefix}-stale-periods"
  alarm_description   = "kubecur: billing periods stay stale or failed after three reconciler passes. GET /status says why per period."
  namespace           = "kubecur"
  metric_name         = "StalePeriods"
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "failed_periods" {
  alarm_name          = "${var.name_prefix}-failed-periods"
  alarm_description   = "kubecur: the newest delivery of a billing period failed; the previous snapshot keeps serving. GET /status shows the reason."
  namespace           = "kubecur"
  metric_name         = "FailedPeriods"
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
}
