terraform {
  # startswith/endswith/strcontains in validations need 1.5; tested with 1.11.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x from 5.80 on: every argument used here exists there; 6.x is not tested yet.
      version = "~> 5.80"
    }
  }
}
