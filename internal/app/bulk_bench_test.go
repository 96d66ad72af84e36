package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/keysource"
	"github.com/rkms/rkms/internal/metrics"
	"github.com/rkms/rkms/internal/testing/bulkgen"
)

// benchDocJob returns the seal job of the bulk policy over an on-disk keyring.
func benchDocJob(b *testing.B) *docJob {
	b.Helper()
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "rkms.yaml")
	err := os.WriteFile(cfgPath, fmt.Appendf(nil, "data_dir: %[1]s/data\nadmin: {token_file: %[1]s/data/admin.token}\nstore: {type: embedded, embedded: {path: %[1]s/data/keys.db}}\n%[2]s",
		dir, bulkgen.Policy), 0o600)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	ks, err := openKeys(context.Background(), cfg, cliLogger(io.Discard), metrics.New())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ks.close)
	pol, err := findPolicy(cfg, cfgPath, "bulk")
	if err != nil {
		b.Fatal(err)
	}
	f := &sealFlags{path: "/", claims: claimFlags{}}
	d, err := newDocJob(sealOp{"seal", policy.Encrypt}, f, cfg, pol, newMemoKeys(keysource.Keyring{K: ks.kr}, time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkBulkSealRecord is the per-record path of rkms seal over NDJSON: key id from the
// record, the transform, four fields sealed. Compare runs with benchstat:
//
//	go test ./internal/app -run '^$' -bench BulkSeal -count 6 | tee new.txt; benchstat old.txt new.txt
func BenchmarkBulkSealRecord(b *testing.B) {
	d := benchDocJob(b)
	recs := genRecords(1024)
	ctx := context.Background()
	var dst []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(recs[0])))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rec := []byte(strings.TrimSuffix(recs[i%len(recs)], "\n"))
		var err error
		if dst, _, err = d.record(ctx, rec, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBulkSeal is the whole NDJSON pipeline (reader, workers, ordered writer) over inputs
// of several sizes, with GOMAXPROCS workers.
func BenchmarkBulkSeal(b *testing.B) {
	d := benchDocJob(b)
	for _, size := range []int64{1 << 20, 16 << 20} {
		var in bytes.Buffer
		if _, _, err := bulkgen.Write(&in, size, 1); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(in.Len()))
			for b.Loop() {
				run := &bulkRun{jobs: 2, maxRecord: 1 << 20, fromLine: 1, process: perRecord(d.record), sum: newBulkSummary("seal", "ndjson", "sealed")}
				if err := run.run(context.Background(), bytes.NewReader(in.Bytes()), io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
