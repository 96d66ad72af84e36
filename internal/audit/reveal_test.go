package audit

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"testing"
)

func TestRecordReveal(t *testing.T) {
	var buf bytes.Buffer
	a := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	ctx := WithWho(context.Background(), Who{API: APIExtProc, Remote: "127.0.0.1:9", RequestID: "r1"})
	a.RecordReveal(ctx, "people", "tenant-acme", []RevealField{
		{Field: "$.ssn", Rule: "support", Action: "mask:last4", N: 1},
		{Field: "$.cards[*].number", Rule: "default", Action: "redact", N: 2},
	})
	a.RecordReveal(ctx, "people", "_bad id\n", nil)
	got := records(t, &buf)
	want := map[string]any{"level": "INFO", "msg": "audit", "logger": "audit", "api": "extproc", "op": "reveal", "policy": "people",
		"key_id": "tenant-acme", "result": "ok", "remote": "127.0.0.1:9", "request_id": "r1",
		"fields": []any{
			map[string]any{"field": "$.ssn", "rule": "support", "action": "mask:last4", "n": float64(1)},
			map[string]any{"field": "$.cards[*].number", "rule": "default", "action": "redact", "n": float64(2)},
		}}
	if len(got) != 2 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("records\n got %v\nwant %v", got, want)
	}
	if _, ok := got[1]["key_id"]; ok {
		t.Errorf("an invalid key id was recorded: %v", got[1])
	}
}
