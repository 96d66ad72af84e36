# One symmetric customer-managed key per region. rkms wraps every data key under each of them
# (creation needs min_regions copies, reads need one region). Refer to them by ARN in the rkms
# configuration: rkms refuses aliases, which are region-local and can be repointed.

resource "aws_kms_key" "r1" {
  provider                = aws.r1
  description             = "${var.name} data-key wrapping key (${var.regions[0]})"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  tags                    = var.tags
}

resource "aws_kms_key" "r2" {
  provider                = aws.r2
  description             = "${var.name} data-key wrapping key (${var.regions[1]})"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  tags                    = var.tags
}

resource "aws_kms_key" "r3" {
  provider                = aws.r3
  description             = "${var.name} data-key wrapping key (${var.regions[2]})"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  tags                    = var.tags
}

# Aliases for people (the console, the CLI); rkms itself uses the ARNs.
resource "aws_kms_alias" "r1" {
  provider      = aws.r1
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.r1.key_id
}

resource "aws_kms_alias" "r2" {
  provider      = aws.r2
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.r2.key_id
}

resource "aws_kms_alias" "r3" {
  provider      = aws.r3
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.r3.key_id
}
