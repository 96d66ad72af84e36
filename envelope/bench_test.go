package envelope

import (
	"bytes"
	"testing"

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
