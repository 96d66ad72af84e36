output "kms_key_arns" {
  description = "KMS key ARN per region, for kms.regions[].key_id."
  value       = {
    (var.regions[0]) = aws_kms_key.r1.arn
    (var.regions[1]) = aws_kms_key.r2.arn
    (var.regions[2]) = aws_kms_key.r3.arn
  }
}

output "policy_arn" {
  description = "The least-privilege IAM policy for rkms's role."
  value       = aws_iam_policy.rkms.arn
}

# The matching part of the rkms configuration, ready to paste.
output "rkms_config" {
  description = "kms and store sections of rkms.yaml for these resources."
  value       = yamlencode({
    kms = {
      provider    = "aws"
      min_regions = 2
      regions     = [
        { name = var.regions[0], key_id = aws_kms_key.r1.arn },
        { name = var.regions[1], key_id = aws_kms_key.r2.arn },
        { name = var.regions[2], key_id = aws_kms_key.r3.arn },
      ]
    }
    store = {
      type     = "dynamodb"
      dynamodb = merge(
        { table = var.table_name, region = var.regions[0], create_table = var.create_table },
        var.global_table ? { endpoints = var.regions } : {},
      )
    }
  })
}
