# From zero to the first allocation in one apply: the billing side (bucket, CUR 2.0 Data Export,
# EventBridge on, tags) and kubecur's pipeline (Glue database and table, functions, API) together.
# The export's first delivery arrives within 24 hours; AWS backfills nothing by itself (see the
# README's "From zero" section for requesting a backfill of earlier months).

module "billing" {
  source = "../../modules/kubecur-billing"
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  name_prefix       = "kubecur"
  bucket_name       = var.export_bucket_name
  s3_prefix         = "cur"
  time_granularity  = "DAILY"
  activate_tag_keys = var.activate_tag_keys
}

module "kubecur" {
  source = "../../modules/kubecur"

  name_prefix     = "kubecur"
  cur_bucket_name = module.billing.bucket_name
  cur_prefix      = module.billing.cur_prefix

  # The export's table, made without a crawler; the ingest adds each month's partition.
  glue_database        = "kubecur_cur"
  glue_table           = "cur2"
  create_glue_database = true
  create_glue_table    = true
  glue_table_format    = "cur2"

  lambda_artifacts_dir = "${path.root}/../../../../target/lambda"
  architecture         = var.architecture

  api_authorization = "AWS_IAM"
  alarm_actions     = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]

  # The billing module owns the bucket and already turned S3 -> EventBridge on.
  enable_bucket_eventbridge = false
}
