# kubecur: CUR -> Athena -> DynamoDB snapshots -> HTTP API. Files by concern:
# storage.tf (results bucket, workgroup, table, Glue, KMS), functions.tf, events.tf, api.tf, iam.tf,
# alarms.tf, outputs.tf.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  # Function names; the log groups /aws/lambda/<name> are created before the functions.
  cur_ingest_name        = "${var.name_prefix}-cur-ingest"
  allocation_writer_name = "${var.name_prefix}-allocation-writer"
  allocation_api_name    = "${var.name_prefix}-allocation-api"

  # The results bucket name carries the account and region (S3 names are global); at most
  # 24 + 8 + 12 + 1 + 14 = 59 characters.
  results_bucket_name = "${var.name_prefix}-athena-${local.account}-${local.region}"

  # ARNs of the existing CUR data and catalog objects (IAM resources).
  cur_bucket_arn  = "arn:${local.partition}:s3:::${var.cur_bucket_name}"
  cur_objects_arn = "arn:${local.partition}:s3:::${var.cur_bucket_name}/${var.cur_prefix}*"
  # Glue ARN formats: Service Authorization Reference, AWS Glue, "Resource types defined by AWS Glue"
  # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsglue.html
  glue_catalog_arn  = "arn:${local.partition}:glue:${local.region}:${local.account}:catalog"
  glue_database_arn = "arn:${local.partition}:glue:${local.region}:${local.account}:database/${var.glue_database}"
  glue_table_arn    = "arn:${local.partition}:glue:${local.region}:${local.account}:table/${var.glue_database}/${var.glue_table}"

  artifacts = trimsuffix(var.lambda_artifacts_dir, "/")

  tags = merge({ "app" = "kubecur" }, var.tags)
}
