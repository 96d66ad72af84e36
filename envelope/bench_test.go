package envelope

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/rkms/rkms/secret"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Benchmarks of Seal and Open next to their baselines, Tink's AES-GCM Encrypt and Decrypt called
// directly (and Tink's AES-SIV for deterministic mode) on the same plaintext and associated data.
// The project's target is Seal/randomized/64B <= 1.5x TinkAESGCM/Encrypt/64B (2x at most).
//
//	go test -run '^$' -bench . -benchmem -count 10 ./envelope/ > new.txt
//	benchstat old.txt new.txt
//
// On a shared machine, separate benchmarks see different load; BenchmarkRatio interleaves the two
// sides in short blocks and reports the median of the per-block ratios, which is the figure to
// check against the target.

var benchSizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"4KiB", 4096}}

const benchLabel = "ssn"

func benchKey() Key { return testKey("tenant-acme", 1, 1) }

func benchPlaintext(n int) []byte { return bytes.Repeat([]byte("x"), n) }

func BenchmarkSeal(b *testing.B) {
	key := benchKey()
	for _, mode := range modes {
		for _, sz := range benchSizes {
			b.Run(mode.String()+"/"+sz.name, func(b *testing.B) {
				pt := benchPlaintext(sz.n)
				dst := mustSeal(b, key, mode, benchLabel, nil, pt) // warm key, sized dst
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if dst, err = Seal(dst[:0], key, mode, benchLabel, nil, pt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	key := benchKey()
	for _, mode := range modes {
		for _, sz := range benchSizes {
			b.Run(mode.String()+"/"+sz.name, func(b *testing.B) {
				pt := benchPlaintext(sz.n)
				text := mustSeal(b, key, mode, benchLabel, nil, pt)
				dst := make([]byte, 0, sz.n)
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if dst, err = Open(dst[:0], key, benchLabel, nil, text); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchAD is the associated data Seal builds for benchKey and benchLabel.
func benchAD(mode Mode) []byte {
	key := benchKey()
	return appendAD(appendHeader(nil, mode, key.ID, key.Version), benchLabel, nil)
}

// newTinkAESGCM builds a Tink AES-256-GCM AEAD the way an application would use Tink directly.
func newTinkAESGCM(b *testing.B) tink.AEAD {
	p, err := aesgcm.NewParameters(aesgcm.ParametersOpts{
		KeySizeInBytes: 32, IVSizeInBytes: 12, TagSizeInBytes: 16, Variant: aesgcm.VariantNoPrefix,
	})
	if err != nil {
		b.Fatal(err)
	}
	k, err := aesgcm.NewKey(secretdata.NewBytesFromData(bytes.Repeat([]byte{7}, 32), insecuresecretdataaccess.Token{}), 0, p)
	if err != nil {
		b.Fatal(err)
	}
	a, err := aesgcm.NewAEAD(k)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkTinkAESGCM(b *testing.B) {
	a := newTinkAESGCM(b)
	ad := benchAD(Randomized)
	for _, sz := range benchSizes {
		pt := benchPlaintext(sz.n)
		b.Run("Encrypt/"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Encrypt(pt, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Decrypt/"+sz.name, func(b *testing.B) {
			ct, err := a.Encrypt(pt, ad)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Decrypt(ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTinkAESSIV is the baseline for deterministic mode: the same Tink primitive Seal uses,
// called directly.
func BenchmarkTinkAESSIV(b *testing.B) {
	s, err := benchKey().suite(Deterministic)
	if err != nil {
		b.Fatal(err)
	}
	ad := benchAD(Deterministic)
	for _, sz := range benchSizes {
		pt := benchPlaintext(sz.n)
		b.Run("Encrypt/"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.daead.EncryptDeterministically(pt, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Decrypt/"+sz.name, func(b *testing.B) {
			ct, err := s.daead.EncryptDeterministically(pt, ad)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.daead.DecryptDeterministically(ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParse measures the key-free header decode that callers run before fetching the key.
func BenchmarkParse(b *testing.B) {
	text := mustSeal(b, benchKey(), Randomized, benchLabel, nil, benchPlaintext(64))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(text); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatio runs Seal (or Open) and the direct Tink call in alternating blocks of
// ratioBlock operations and reports the median ratio of their block times as "x-tink", with each
// side's median ns/op. Load that changes slower than a block cancels out of each ratio.
func BenchmarkRatio(b *testing.B) {
	const ratioBlock = 128
	key := benchKey()
	for _, sz := range benchSizes {
		pt := benchPlaintext(sz.n)
		tinkAEAD := newTinkAESGCM(b)
		ad := benchAD(Randomized)
		ct, err := tinkAEAD.Encrypt(pt, ad)
		if err != nil {
			b.Fatal(err)
		}
		text := mustSeal(b, key, Randomized, benchLabel, nil, pt)
		dst := bytes.Clone(text)
		out := make([]byte, 0, sz.n)
		// Each side returns its error, checked once per block: a side that failed fast (a
		// regression that returns an error early) must fail the benchmark, not improve its ratio.
		pairs := []struct {
			name       string
			ours, tink func() error
		}{
			{"Seal-vs-TinkEncrypt/" + sz.name,
				func() (err error) { dst, err = Seal(dst[:0], key, Randomized, benchLabel, nil, pt); return err },
				func() error { _, err := tinkAEAD.Encrypt(pt, ad); return err }},
			{"Open-vs-TinkDecrypt/" + sz.name,
				func() (err error) { out, err = Open(out[:0], key, benchLabel, nil, text); return err },
				func() error { _, err := tinkAEAD.Decrypt(ct, ad); return err }},
		}
		for _, p := range pairs {
			b.Run(p.name, func(b *testing.B) {
				var ratios, ours, tink []float64
				b.ReportAllocs()
				for b.Loop() {
					var oursErr, tinkErr error
					t0 := time.Now()
					for range ratioBlock {
						if err := p.ours(); err != nil {
							oursErr = err
						}
					}
					t1 := time.Now()
					for range ratioBlock {
						if err := p.tink(); err != nil {
							tinkErr = err
						}
					}
					t2 := time.Now()
					if oursErr != nil || tinkErr != nil {
						b.Fatalf("ours: %v; tink: %v", oursErr, tinkErr)
					}
					o, t := float64(t1.Sub(t0)), float64(t2.Sub(t1))
					ratios, ours, tink = append(ratios, o/t), append(ours, o/ratioBlock), append(tink, t/ratioBlock)
				}
				b.ReportMetric(median(ratios), "x-tink")
				b.ReportMetric(median(ours), "ours-ns/op")
				b.ReportMetric(median(tink), "tink-ns/op")
			})
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkFirstUse measures what the first Seal with a key version costs (deriving the
// subkey and primitive, building the header cache) beside a Seal with a warm key, in the same run.
func BenchmarkFirstUse(b *testing.B) {
	pt := benchPlaintext(64)
	warm := benchKey()
	raw := make([]byte, DataKeyLen)
	for _, mode := range []Mode{Randomized, Deterministic} {
		b.Run(mode.String()+"/cold", func(b *testing.B) {
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				key := Key{ID: warm.ID, Version: warm.Version, Secret: secret.New(bytes.Clone(raw))}
				var err error
				if dst, err = Seal(dst[:0], key, mode, benchLabel, nil, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.String()+"/warm", func(b *testing.B) {
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = Seal(dst[:0], warm, mode, benchLabel, nil, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
