package dynamodb

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/storetest"
)

func readGolden(t testing.TB) []byte { return readGoldenFile(t, "testdata/item-v1.json") }

func readGoldenFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

// TestItemGolden pins item layout version 1 in both directions: items written before version
// lifecycle existed, and items with its fields.
func TestItemGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		rec  *store.Record
	}{
		{"testdata/item-v1.json", storetest.GoldenRecord()},
		{"testdata/item-v1-lifecycle.json", storetest.GoldenLifecycleRecord()},
		{"testdata/item-v1-branch.json", storetest.GoldenBranchRecord()},
	} {
		t.Run(tc.file, func(t *testing.T) { testItemGolden(t, readGoldenFile(t, tc.file), tc.rec) })
	}
}

func testItemGolden(t *testing.T, golden []byte, rec *store.Record) {
	got, err := marshalItem(encodeItem(rec, rec.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, golden) {
		t.Fatalf("item layout changed:\n%s\nwant\n%s", got, golden)
	}
	item, err := unmarshalItem(golden)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := decodeItem(item)
	if err != nil {
		t.Fatal(err)
	}
	again, err := marshalItem(encodeItem(dec, dec.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, golden) {
		t.Fatalf("decode/encode changed the item:\n%s", again)
	}
}

func TestDecodeItemIgnoresUnknownAttributes(t *testing.T) {
	item := encodeItem(storetest.GoldenRecord(), 3)
	item["aws:rep:updateregion"] = attrS("eu-west-1")
	item["ttl"] = attrN(5)
	if _, err := decodeItem(item); err != nil {
		t.Fatalf("decodeItem with extra attributes: %v", err)
	}
}

func TestDecodeItemRejects(t *testing.T) {
	version := func(item map[string]types.AttributeValue) map[string]types.AttributeValue {
		return item[attrVersions].(*types.AttributeValueMemberL).Value[0].(*types.AttributeValueMemberM).Value
	}
	wrapped := func(item map[string]types.AttributeValue) map[string]types.AttributeValue {
		return version(item)[attrWrapped].(*types.AttributeValueMemberM).Value["us-east-1"].(*types.AttributeValueMemberM).Value
	}
	tests := []struct {
		name   string
		mutate func(item map[string]types.AttributeValue)
	}{
		{"no-schema", func(i map[string]types.AttributeValue) { delete(i, attrSchema) }},
		{"schema-2", func(i map[string]types.AttributeValue) { i[attrSchema] = attrN(2) }},
		{"schema-string", func(i map[string]types.AttributeValue) { i[attrSchema] = attrS("1") }},
		{"no-id", func(i map[string]types.AttributeValue) { delete(i, attrID) }},
		{"rev-0", func(i map[string]types.AttributeValue) { i[attrRev] = attrN(0) }},
		{"rev-fraction", func(i map[string]types.AttributeValue) { i[attrRev] = &types.AttributeValueMemberN{Value: "1.5"} }},
		{"cur-overflow", func(i map[string]types.AttributeValue) { i[attrCur] = attrN(1 << 32) }},
		{"cur-negative", func(i map[string]types.AttributeValue) { i[attrCur] = attrN(-1) }},
		{"no-versions", func(i map[string]types.AttributeValue) { delete(i, attrVersions) }},
		{"versions-map", func(i map[string]types.AttributeValue) {
			i[attrVersions] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
		}},
		{"version-not-map", func(i map[string]types.AttributeValue) {
			i[attrVersions] = &types.AttributeValueMemberL{Value: []types.AttributeValue{attrS("x")}}
		}},
		{"number-missing", func(i map[string]types.AttributeValue) { delete(version(i), attrNumber) }},
		{"created-bad", func(i map[string]types.AttributeValue) { version(i)[attrCreated] = attrS("yesterday") }},
		{"created-missing", func(i map[string]types.AttributeValue) { delete(version(i), attrCreated) }},
		{"wrapped-missing", func(i map[string]types.AttributeValue) { delete(version(i), attrWrapped) }},
		{"wrapped-entry-not-map", func(i map[string]types.AttributeValue) {
			version(i)[attrWrapped].(*types.AttributeValueMemberM).Value["x"] = attrS("y")
		}},
		{"blob-string", func(i map[string]types.AttributeValue) { wrapped(i)[attrBlob] = attrS("AQID") }},
		{"key-id-number", func(i map[string]types.AttributeValue) { wrapped(i)[attrKeyID] = attrN(1) }},
		{"missing-not-list", func(i map[string]types.AttributeValue) { version(i)[attrMissing] = attrS("eu-west-1") }},
		{"missing-entry-number", func(i map[string]types.AttributeValue) {
			version(i)[attrMissing] = &types.AttributeValueMemberL{Value: []types.AttributeValue{attrN(1)}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			item := encodeItem(storetest.GoldenRecord(), 3)
			tc.mutate(item)
			if _, err := decodeItem(item); !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("decodeItem = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestItemRevisionRange checks that rev holds any positive int64 (Create starts anywhere below
// 2^62), and nothing else.
func TestItemRevisionRange(t *testing.T) {
	tests := []struct {
		rev string
		ok  bool
	}{
		{"1", true},
		{"4611686018427387903", true}, // 2^62-1, the largest start
		{"9223372036854775807", true}, // 2^63-1, store.MaxRevision
		{"9223372036854775808", false},
		{"0", false},
		{"-3", false},
		{"1e3", false},
	}
	for _, tt := range tests {
		t.Run(tt.rev, func(t *testing.T) {
			item := encodeItem(storetest.GoldenRecord(), 3)
			item[attrRev] = &types.AttributeValueMemberN{Value: tt.rev}
			rec, err := decodeItem(item)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("decodeItem: %v", err)
			case tt.ok && strconv.FormatInt(rec.Revision, 10) != tt.rev:
				t.Fatalf("Revision = %d, want %s", rec.Revision, tt.rev)
			case !tt.ok && !errors.Is(err, store.ErrCorrupt):
				t.Fatalf("decodeItem = %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzDecodeItem feeds items written in DynamoDB JSON to decodeItem: it must never panic, fail only
// with ErrCorrupt, and whatever it accepts must survive encode/decode unchanged.
func FuzzDecodeItem(f *testing.F) {
	f.Add(readGolden(f))
	f.Add(readGoldenFile(f, "testdata/item-v1-lifecycle.json"))
	f.Add(readGoldenFile(f, "testdata/item-v1-branch.json"))
	f.Add([]byte(`{"id":{"S":"k"},"schema":{"N":"1"},"rev":{"N":"2"},"cur":{"N":"1"},"min_decrypt":{"N":"1"},"versions":{"L":[{"M":{"number":{"N":"1"},"created":{"S":"2025-01-01T00:00:00Z"},"retired":{"S":"2025-01-02T00:00:00Z"},"destroyed":{"S":"2025-01-09T00:00:00Z"},"seals":{"N":"18446744073709551615"},"wrapped":{"M":{}}}}]}}`))
	f.Add([]byte(`{"id":{"S":"k"},"schema":{"N":"1"},"rev":{"N":"1"},"cur":{"N":"0"},"versions":{"L":[]}}`))
	f.Add([]byte(`{"id":{"S":"k"},"schema":{"N":"1"},"rev":{"N":"9223372036854775807"},"cur":{"N":"0"},"versions":{"L":[]}}`))
	f.Add([]byte(`{"id":{"S":"k"},"schema":{"N":"1"},"rev":{"N":"2"},"cur":{"N":"1"},"versions":{"L":[{"M":{"number":{"N":"1"},"created":{"S":"2025-01-01T00:00:00Z"},"wrapped":{"M":{"r":{"M":{}}}}}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		item, err := unmarshalItem(data)
		if err != nil {
			return
		}
		rec, err := decodeItem(item)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("decodeItem error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc, err := marshalItem(encodeItem(rec, rec.Revision))
		if err != nil {
			t.Fatal(err)
		}
		item2, err := unmarshalItem(enc)
		if err != nil {
			t.Fatal(err)
		}
		rec2, err := decodeItem(item2)
		if err != nil {
			t.Fatalf("decode of a re-encoded item: %v", err)
		}
		enc2, err := marshalItem(encodeItem(rec2, rec2.Revision))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}
