# Example root: copy this directory, set cur_bucket_name (and the other values) in terraform.tfvars,
# build the zips (cargo lambda build --release --output-format zip --arm64) and apply.

module "kubecur" {
  source = "../../modules/kubecur"

  name_prefix     = "kubecur"
  cur_bucket_name = var.cur_bucket_name
  cur_prefix      = var.cur_prefix
  glue_database   = var.glue_database
  glue_table      = var.glue_table

  # The table already exists (AWS's crawler or your DDL); set true to let kubecur create a CUR 2.0 table.
  create_glue_table = false

  # Path from this directory to the repository's target/lambda (cargo lambda's output).
  lambda_artifacts_dir = "${path.root}/../../../../target/lambda"
  architecture         = var.architecture

  bytes_scanned_cutoff_per_query = 10737418240 # 10 GiB
  tag_keys                       = ""
  labels                         = ""
  log_retention_days             = 30
  results_expiration_days        = 7

  api_authorization = "AWS_IAM"
  # api_authorization = "JWT"
  # jwt_issuer        = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"
  # jwt_audience      = ["example-client-id"]

  alarm_actions = var.alarm_email_topic_arn == "" ? [] : [var.alarm_email_topic_arn]

  # Leave false when the bucket has ANY other notification (AWS's CUR crawler template installs one):
  # enable EventBridge on the bucket as README.md describes instead.
  enable_bucket_eventbridge = false

  tags = {
    "cost-center" = "platform"
  }
}
