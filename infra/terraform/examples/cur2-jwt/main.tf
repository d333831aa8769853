# Example root for a fresh CUR 2.0 Data Export: kubecur creates the Glue database and table, turns on
# S3 -> EventBridge for the export bucket, and protects the API with a JWT authorizer.
#
# enable_bucket_eventbridge = true REPLACES the bucket's whole notification configuration: use it only
# for a bucket with no other notification (a Data Export bucket made for kubecur). With AWS's legacy
# CUR crawler template, use the complete example and enable EventBridge as README.md describes.

module "kubecur" {
  source = "../../modules/kubecur"

  name_prefix     = "kubecur"
  cur_bucket_name = var.cur_bucket_name
  cur_prefix      = var.cur_prefix

  glue_database        = "kubecur_cur"
  glue_table           = "cur2"
  create_glue_database = true
  create_glue_table    = true
  glue_table_format    = "cur2"

  lambda_artifacts_dir = "${path.root}/../../../../target/lambda"
  architecture         = "x86_64" # built with cargo lambda build --release --output-format zip --x86-64

  api_authorization = "JWT"
  jwt_issuer        = var.jwt_issuer
  jwt_audience      = var.jwt_audience

  enable_bucket_eventbridge = true
}
