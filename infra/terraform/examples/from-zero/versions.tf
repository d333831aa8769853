terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "managed-by" = "terraform"
    }
  }
}

# Data Exports is served from us-east-1 only; the export (not the bucket) is created through this alias.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = {
      "managed-by" = "terraform"
    }
  }
}
