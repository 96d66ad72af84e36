# The table of wrapped keys: one item per key id, partition key `id` (String), nothing else in
# the key schema (store/dynamodb/doc.go). Written in the first region only.
resource "aws_dynamodb_table" "keys" {
  count    = var.create_table ? 0 : 1
  provider = aws.r1

  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = true

  # Global tables (version 2019.11.21) need a stream of new and old images.
  stream_enabled   = var.global_table
  stream_view_type = var.global_table ? "NEW_AND_OLD_IMAGES" : null

  dynamic "replica" {
    for_each = var.global_table ? slice(var.regions, 1, 3) : []
    content {
      region_name            = replica.value
      point_in_time_recovery = true
    }
  }

  tags = var.tags
}
