// Package bulkgen writes realistic NDJSON exports for the bulk seal benchmark and tests
// (`make bench-bulk`, internal/app's bulk tests): one customer record per line, 300 to 500
// bytes, with the four members the bench policy tags (ssn, card.number, email, dob), untagged
// members around them, and a tenant member that the policy's key id template reads
// (`tenant-{json:$.tenant}`).
//
// The output is a pure function of the seed and the size: two runs with the same arguments
// write the same bytes. The values are made up (synthetic names, test card numbers).
package bulkgen
