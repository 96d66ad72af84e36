data "aws_caller_identity" "current" {
  provider = aws.r1
}

data "aws_partition" "current" {
  provider = aws.r1
}

locals {
  key_arns = [aws_kms_key.r1.arn, aws_kms_key.r2.arn, aws_kms_key.r3.arn]

  table_arns = [
    for r in (var.global_table ? var.regions : [var.regions[0]]) :
    "arn:${data.aws_partition.current.partition}:dynamodb:${r}:${data.aws_caller_identity.current.account_id}:table/${var.table_name}"
  ]

  table_actions = concat(
    ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"],
    var.create_table ? ["dynamodb:DescribeTable", "dynamodb:CreateTable"] : [],
  )
}

# Least privilege for rkms: the three data-key operations on its three keys, and only with the
# encryption context rkms binds to every data key ({"rkms:key-id", "rkms:key-version"}), plus
# the breaker's health probe (an Encrypt of zeros with {"rkms:purpose": "health-probe"}); item
# reads and writes on its one table.
data "aws_iam_policy_document" "rkms" {
  statement {
    sid       = "DataKeys"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
    resources = local.key_arns

    # Only these context keys...
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "kms:EncryptionContextKeys"
      values   = ["rkms:key-id", "rkms:key-version"]
    }
    # ...and both of them (ForAllValues alone also matches a call with no context at all).
    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:rkms:key-id"
      values   = ["false"]
    }
    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:rkms:key-version"
      values   = ["false"]
    }
  }

  statement {
    sid       = "HealthProbe"
    effect    = "Allow"
    actions   = ["kms:Encrypt"]
    resources = local.key_arns

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "kms:EncryptionContextKeys"
      values   = ["rkms:purpose"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:rkms:purpose"
      values   = ["health-probe"]
    }
  }

  statement {
    sid       = "KeyTable"
    effect    = "Allow"
    actions   = local.table_actions
    resources = local.table_arns
  }
}

resource "aws_iam_policy" "rkms" {
  provider    = aws.r1
  name        = "${var.name}-keys"
  description = "rkms: data keys under its three KMS keys and items of its DynamoDB table"
  policy      = data.aws_iam_policy_document.rkms.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "rkms" {
  count      = var.role_name == "" ? 0 : 1
  provider   = aws.r1
  role       = var.role_name
  policy_arn = aws_iam_policy.rkms.arn
}
