variable "regions" {
  description = "The three AWS regions that hold a KMS key each. The first is the DynamoDB write region."
  type        = list(string)
  default     = ["us-east-1", "us-west-2", "eu-west-1"]

  validation {
    condition     = length(var.regions) == 3 && length(distinct(var.regions)) == 3
    error_message = "Give exactly three distinct regions."
  }
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "rkms"
}

variable "table_name" {
  description = "DynamoDB table of wrapped keys (rkms config store.dynamodb.table)."
  type        = string
  default     = "rkms_keys"
}

variable "global_table" {
  description = "Replicate the table to the other two regions (a global table); rkms reads fall back to the replicas (store.dynamodb.endpoints)."
  type        = bool
  default     = false
}

variable "create_table" {
  description = "Let rkms create the table itself (store.dynamodb.create_table: true) instead of Terraform: grants dynamodb:CreateTable and DescribeTable and creates no table here."
  type        = bool
  default     = false
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion. Deleting a key destroys every data key wrapped under it in that region."
  type        = number
  default     = 30
}

variable "role_name" {
  description = "Existing IAM role of rkms (for example its IRSA role) to attach the policy to; empty attaches nothing."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
