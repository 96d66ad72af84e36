package bulkgen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// Tenants is how many tenants the records spread over (tenant t0 .. t7).
const Tenants = 8

// Policy is a configuration fragment with the policy the records are made for: "bulk", keyed
// per tenant from the record itself, sealing the four tagged members.
const Policy = `policies:
  - name: bulk
    match: {path_prefix: /customers}
    key_id: "tenant-{json:$.tenant}"
    request: {encrypt: ["$.ssn", "$.card.number", "$.email", "$.dob"]}
    response: {decrypt: ["$.ssn", "$.card.number", "$.email", "$.dob"]}
`

// TaggedPerRecord is how many members of each record the policy seals.
const TaggedPerRecord = 4

var (
	firstNames = []string{"Ann", "Bob", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lea"}
	lastNames  = []string{"Smith", "Okafor", "Novak", "Tanaka", "Garcia", "Müller", "Rossi", "Kowalski", "Haddad", "Silva"}
	cities     = []string{"Lisbon", "Osaka", "Lagos", "Denver", "Tallinn", "Porto Alegre", "Kraków", "Lyon"}
	streets    = []string{"Main St", "Rua Augusta", "Elm Avenue", "Harbour Road", "Via Roma", "Long Lane"}
	plans      = []string{"free", "pro", "team", "enterprise"}
	notes      = []string{"", "prefers email", "VIP since 2019; call before shipping", "address verified", "asked for paper invoices, twice"}
)

// Write writes records to w until at least size bytes have been written (at least one
// record), and returns how many records and bytes it wrote.
func Write(w io.Writer, size int64, seed uint64) (records int, written int64, err error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var line []byte
	for written < size || records == 0 {
		line = AppendRecord(line[:0], r, records)
		if _, err := bw.Write(line); err != nil {
			return records, written, fmt.Errorf("write record %d: %w", records+1, err)
		}
		records++
		written += int64(len(line))
	}
	if err := bw.Flush(); err != nil {
		return records, written, fmt.Errorf("flush: %w", err)
	}
	return records, written, nil
}

// AppendRecord appends record number i (its id), drawn from r, and a newline to b.
func AppendRecord(b []byte, r *rand.Rand, i int) []byte {
	first, last := pick(r, firstNames), pick(r, lastNames)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(i+1), 10)
	b = append(b, `,"tenant":"t`...)
	b = strconv.AppendInt(b, int64(r.IntN(Tenants)), 10)
	b = append(b, `","name":"`...)
	b = append(b, first...)
	b = append(b, ' ')
	b = append(b, last...)
	b = append(b, `","ssn":"`...)
	b = fmt.Appendf(b, "%03d-%02d-%04d", 100+r.IntN(800), 10+r.IntN(89), r.IntN(10000))
	b = append(b, `","email":"`...)
	b = fmt.Appendf(b, "%s.%s%d@example.com", first, last, r.IntN(1000))
	b = append(b, `","dob":"`...)
	b = fmt.Appendf(b, "%04d-%02d-%02d", 1940+r.IntN(65), 1+r.IntN(12), 1+r.IntN(28))
	b = append(b, `","card":{"number":"4`...)
	for range 15 {
		b = append(b, byte('0'+r.IntN(10)))
	}
	b = fmt.Appendf(b, `","exp":"%02d/%02d","brand":"visa"}`, 1+r.IntN(12), 27+r.IntN(6))
	b = fmt.Appendf(b, `,"address":{"street":"%d %s","city":"%s","zip":"%05d"}`, 1+r.IntN(999), pick(r, streets), pick(r, cities), r.IntN(100000))
	b = fmt.Appendf(b, `,"plan":"%s","active":%t,"balance":%d.%02d`, pick(r, plans), r.IntN(5) != 0, r.IntN(100000), r.IntN(100))
	b = fmt.Appendf(b, `,"created":"20%02d-%02d-%02dT%02d:%02d:%02dZ","orders":[`, 15+r.IntN(11), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	for j := range 1 + r.IntN(3) {
		if j > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"sku":"SKU-%05d","qty":%d}`, r.IntN(100000), 1+r.IntN(9))
	}
	b = fmt.Appendf(b, `],"note":"%s"}`, pick(r, notes))
	return append(b, '\n')
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }
