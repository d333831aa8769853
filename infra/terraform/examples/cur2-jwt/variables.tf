variable "region" {
  description = "Region of the CUR bucket, the Glue catalog and Athena (kubecur deploys there)."
  type        = string
  default     = "us-east-1"
}

variable "cur_bucket_name" {
  description = "Existing bucket of a CUR 2.0 Data Export that has NO other S3 event notification."
  type        = string
}

variable "cur_prefix" {
  description = "The export's S3 prefix followed by its name and '/', e.g. \"cur/kubecur-export/\"."
  type        = string
  default     = "cur/kubecur-export/"
}

variable "jwt_issuer" {
  description = "Issuer of the tokens the API accepts (e.g. a Cognito user pool URL)."
  type        = string
}

variable "jwt_audience" {
  description = "Audiences (client ids) the API accepts."
  type        = list(string)
}
