terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Same range as modules/kubecur, so one root can use both. aws_bcmdataexports_export exists
      # throughout 5.x from 5.80 on.
      version = "~> 5.80"
      # The Data Exports API is served from us-east-1 only: the export is created through this alias
      # (the bucket may be in any region). https://docs.aws.amazon.com/cur/latest/userguide/dataexports-create.html
      configuration_aliases = [aws.us_east_1]
    }
  }
}
