package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"testing"

	"github.com/rkms/rkms/keyring"
)

// TestRecordBatch: a batch record names the caller, the counts and at most MaxBatchKeyIDs valid
// key ids; an invalid id never reaches it.
func TestRecordBatch(t *testing.T) {
	var ids BatchIDs
	for i := range MaxBatchKeyIDs + 4 {
		ids.Add("tenant-" + strconv.Itoa(i))
		ids.Add("tenant-0") // repeats count once
	}
	b := Batch{Items: 40, Rewrapped: 30, Unchanged: 6, Failed: 4}
	ids.Fill(&b)
	if b.KeyIDCount != MaxBatchKeyIDs+4 || len(b.KeyIDs) != MaxBatchKeyIDs || b.KeyIDs[1] != "tenant-1" {
		t.Fatalf("BatchIDs: %d ids, first %v", b.KeyIDCount, b.KeyIDs)
	}
	tests := []struct {
		name  string
		batch Batch
		err   error
		want  map[string]any
	}{
		{"ok", b, nil, map[string]any{"result": "ok", "items": 40.0, "key_id_count": float64(MaxBatchKeyIDs + 4),
			"rewrapped": 30.0, "unchanged": 6.0, "failed": 4.0}},
		{"invalid batch", Batch{Items: 1001, KeyIDs: []string{"bad id\n", "a"}}, fmt.Errorf("too many: %w", keyring.ErrInvalidID),
			map[string]any{"result": "invalid", "items": 1001.0, "key_ids": []any{"a"}, "key_id_count": 0.0,
				"rewrapped": 0.0, "unchanged": 0.0, "failed": 0.0, "error": "too many: " + keyring.ErrInvalidID.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			ctx := WithWho(context.Background(), Who{API: APIGRPC, Remote: "127.0.0.1:7", Principal: "migrator"})
			New(slog.New(slog.NewJSONHandler(&buf, nil))).RecordBatch(ctx, OpRewrap, tt.batch, tt.err)
			got := records(t, &buf)
			if len(got) != 1 {
				t.Fatalf("%d records", len(got))
			}
			want := map[string]any{"level": "INFO", "msg": "audit", "logger": "audit", "api": "grpc", "op": "rewrap",
				"remote": "127.0.0.1:7", "principal": "migrator"}
			if tt.batch.KeyIDs != nil {
				ks := make([]any, 0, len(tt.batch.KeyIDs))
				for _, id := range tt.batch.KeyIDs {
					ks = append(ks, id)
				}
				want["key_ids"] = ks
			}
			for k, v := range tt.want {
				want[k] = v
			}
			if !reflect.DeepEqual(got[0], want) {
				t.Fatalf("record\n got %v\nwant %v", got[0], want)
			}
		})
	}
}
