terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
  }
}

# One provider per KMS region. The first region is also where the DynamoDB table is written
# (rkms writes to one region only: see store/dynamodb/doc.go).
provider "aws" {
  alias  = "r1"
  region = var.regions[0]
}

provider "aws" {
  alias  = "r2"
  region = var.regions[1]
}

provider "aws" {
  alias  = "r3"
  region = var.regions[2]
}
