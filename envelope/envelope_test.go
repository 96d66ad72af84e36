package envelope

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/rkms/rkms/secret"
)

var modes = []Mode{Randomized, Deterministic}

func TestRoundTripPreservesJSONText(t *testing.T) {
	key := testKey("tenant-acme", 3, 1)
	values := []struct{ name, json string }{
		{"string", `"123-45-6789"`},
		{"string with escapes", `"a\"b\\c\u00e9\n"`},
		{"unicode string", `"日本語 🎉"`},
		{"integer", `42`},
		{"negative float", `-1.5e-7`},
		{"true", `true`},
		{"false", `false`},
		{"null", `null`},
		{"object", `{"a":1,"b":[true,null]}`},
		{"object with spaces", "{ \"a\" :\t1 }"},
		{"array", `[1,"two",{"three":3}]`},
		{"one byte", `0`},
		{"largest", `"` + strings.Repeat("x", MaxPlaintextLen-2) + `"`},
	}
	contexts := [][]byte{nil, []byte("tenant=acme")}
	for _, mode := range modes {
		for _, v := range values {
			for _, ctx := range contexts {
				t.Run(mode.String()+"/"+v.name, func(t *testing.T) {
					prefix := []byte("prefix:")
					text, err := Seal(bytes.Clone(prefix), key, mode, "ssn", ctx, []byte(v.json))
					if err != nil {
						t.Fatalf("Seal: %v", err)
					}
					if !bytes.HasPrefix(text, prefix) {
						t.Fatalf("Seal did not append to dst: %.20q", text)
					}
					text = text[len(prefix):]
					if !IsCiphertext(text) {
						t.Fatalf("IsCiphertext(%.20q) = false", text)
					}
					for _, c := range text {
						if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
							t.Fatalf("text has byte %q that needs JSON escaping", c)
						}
					}
					h, err := Parse(text)
					if err != nil {
						t.Fatalf("Parse: %v", err)
					}
					want := Header{FormatVersion: 1, Mode: mode, KeyID: "tenant-acme", KeyVersion: 3}
					if h != want {
						t.Fatalf("Parse = %+v, want %+v", h, want)
					}
					got, err := Open(bytes.Clone(prefix), key, "ssn", ctx, text)
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					if !bytes.Equal(got, append(prefix, v.json...)) {
						t.Fatalf("Open = %.40q, want %.40q", got, v.json)
					}
				})
			}
		}
	}
}

func TestDeterminism(t *testing.T) {
	key := testKey("tenant-acme", 1, 1)
	pt := []byte(`"alice@example.com"`)
	a := mustSeal(t, key, Deterministic, "email", nil, pt)
	b := mustSeal(t, key, Deterministic, "email", nil, pt)
	if !bytes.Equal(a, b) {
		t.Fatalf("deterministic mode gave %q and %q for the same input", a, b)
	}
	r1 := mustSeal(t, key, Randomized, "email", nil, pt)
	r2 := mustSeal(t, key, Randomized, "email", nil, pt)
	if bytes.Equal(r1, r2) {
		t.Fatalf("randomized mode gave the same ciphertext twice: %q", r1)
	}
	// Anything that is bound into the ciphertext changes the deterministic output.
	others := []struct {
		name string
		text []byte
	}{
		{"label", mustSeal(t, key, Deterministic, "email2", nil, pt)},
		{"context", mustSeal(t, key, Deterministic, "email", []byte("t1"), pt)},
		{"version", mustSeal(t, withSecretOf(t, "tenant-acme", 2, key), Deterministic, "email", nil, pt)},
		{"data key", mustSeal(t, testKey("tenant-acme", 1, 2), Deterministic, "email", nil, pt)},
		{"plaintext", mustSeal(t, key, Deterministic, "email", nil, []byte(`"bob@example.com"`))},
	}
	for _, o := range others {
		if bytes.Equal(decodeBinary(t, a)[19:], decodeBinary(t, o.text)[19:]) {
			t.Errorf("changing the %s did not change the AES-SIV output", o.name)
		}
	}
}

// TestOpenWrongBinding opens a ciphertext with one bound input changed at a time.
func TestOpenWrongBinding(t *testing.T) {
	key := testKey("tenant-acme", 7, 1)
	pt := []byte(`{"n":1}`)
	ctx := []byte("tenant=acme")
	tests := []struct {
		name    string
		key     Key
		label   string
		context []byte
		want    error
	}{
		{"other label", key, "email", ctx, ErrAuthentication},
		{"label differing in case", key, "SSN", ctx, ErrAuthentication},
		{"other context", key, "ssn", []byte("tenant=evil"), ErrAuthentication},
		{"missing context", key, "ssn", nil, ErrAuthentication},
		{"label and context shifted", key, "ssnt", []byte("enant=acme"), ErrAuthentication},
		{"other data key", testKey("tenant-acme", 7, 9), "ssn", ctx, ErrAuthentication},
		{"other key id", testKey("tenant-other", 7, 1), "ssn", ctx, ErrKeyMismatch},
		{"other key version", withSecretOf(t, "tenant-acme", 8, key), "ssn", ctx, ErrKeyMismatch},
		{"key id prefix", withSecretOf(t, "tenant-acm", 7, key), "ssn", ctx, ErrKeyMismatch},
	}
	for _, mode := range modes {
		text := mustSeal(t, key, mode, "ssn", ctx, pt)
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				dst := []byte("keep")
				got, err := Open(dst, tt.key, tt.label, tt.context, text)
				if !errors.Is(err, tt.want) {
					t.Fatalf("Open error = %v, want %v", err, tt.want)
				}
				if tt.want == ErrAuthentication && err.Error() != "authentication failed" {
					t.Fatalf("authentication error says %q", err)
				}
				if string(got) != "keep" {
					t.Fatalf("Open changed dst on error: %q", got)
				}
			})
		}
	}
}

// TestHeaderIsAuthenticated rewrites the header to another key id or version and opens it with a
// key that matches the new header: the AEAD must fail because the header is associated data,
// even when the key holds the very same data key bytes.
func TestHeaderIsAuthenticated(t *testing.T) {
	key := testKey("tenant-acme", 7, 1)
	pt := []byte(`"123-45-6789"`)
	tests := []struct {
		name    string
		id      string
		version uint32
		sameDEK bool
	}{
		{"other id, same data key", "tenant-evil", 7, true},
		{"other version, same data key", "tenant-acme", 6, true},
		{"other id and version, same data key", "x", 1, true},
		{"other id, its own data key", "tenant-evil", 7, false},
		{"other version, its own data key", "tenant-acme", 8, false},
	}
	for _, mode := range modes {
		text := mustSeal(t, key, mode, "ssn", nil, pt)
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				forged := rewriteHeader(t, text, tt.id, tt.version)
				h, err := Parse(forged)
				if err != nil {
					t.Fatalf("Parse of rewritten header: %v", err)
				}
				if h.KeyID != tt.id || h.KeyVersion != tt.version {
					t.Fatalf("rewritten header parsed as %+v", h)
				}
				k := testKey(tt.id, tt.version, 77)
				if tt.sameDEK {
					k = withSecretOf(t, tt.id, tt.version, key)
				}
				if _, err := Open(nil, k, "ssn", nil, forged); err != ErrAuthentication {
					t.Fatalf("Open = %v, want exactly ErrAuthentication", err)
				}
			})
		}
	}
	t.Run("mode byte flipped", func(t *testing.T) {
		// A randomized ciphertext relabelled as deterministic (and the reverse) must not open:
		// the subkeys differ and the mode is in the associated data.
		for _, mode := range modes {
			bin := decodeBinary(t, mustSeal(t, key, mode, "ssn", nil, pt))
			bin[1] = byte(3 - mode)
			if _, err := Open(nil, key, "ssn", nil, encodeBinary(bin)); err != ErrAuthentication {
				t.Errorf("%s relabelled: Open = %v, want ErrAuthentication", mode, err)
			}
		}
	})
}

// TestTampering flips every bit of the binary form, one at a time, and appends and removes bytes.
func TestTampering(t *testing.T) {
	key := testKey("k", 1, 1)
	for _, mode := range modes {
		text := mustSeal(t, key, mode, "f", nil, []byte(`true`))
		bin := decodeBinary(t, text)
		for i := range bin {
			for bit := range 8 {
				b := bytes.Clone(bin)
				b[i] ^= 1 << bit
				_, err := Open(nil, key, "f", nil, encodeBinary(b))
				if !errors.Is(err, ErrAuthentication) && !errors.Is(err, ErrMalformed) &&
					!errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrKeyMismatch) {
					t.Fatalf("%s: flipping bit %d of byte %d: Open = %v, want a rejection", mode, bit, i, err)
				}
			}
		}
		for _, b := range [][]byte{append(bytes.Clone(bin), 0), bin[:len(bin)-1]} {
			if _, err := Open(nil, key, "f", nil, encodeBinary(b)); err != ErrAuthentication {
				t.Errorf("%s: length %d instead of %d: Open = %v, want ErrAuthentication", mode, len(b), len(bin), err)
			}
		}
	}
}

func TestSealRejectsInvalidInput(t *testing.T) {
	good := testKey("tenant-acme", 1, 1)
	wiped := testKey("tenant-acme", 1, 1)
	wiped.Secret.Wipe()
	tests := []struct {
		name      string
		key       Key
		mode      Mode
		label     string
		context   []byte
		plaintext []byte
		wantIs    error
	}{
		{"mode zero", good, 0, "ssn", nil, []byte("1"), nil},
		{"mode three", good, 3, "ssn", nil, []byte("1"), nil},
		{"empty key id", Key{Version: 1, Secret: good.Secret}, Randomized, "ssn", nil, []byte("1"), nil},
		{"key id too long", Key{ID: strings.Repeat("a", MaxKeyIDLen+1), Secret: good.Secret}, Randomized, "ssn", nil, []byte("1"), nil},
		{"key id with space", Key{ID: "a b", Secret: good.Secret}, Randomized, "ssn", nil, []byte("1"), nil},
		{"key id with quote", Key{ID: `a"`, Secret: good.Secret}, Randomized, "ssn", nil, []byte("1"), nil},
		{"nil secret", Key{ID: "a"}, Randomized, "ssn", nil, []byte("1"), nil},
		{"wiped secret", wiped, Deterministic, "ssn", nil, []byte("1"), secret.ErrWiped},
		{"short secret", Key{ID: "a", Secret: secret.New(make([]byte, 16))}, Randomized, "ssn", nil, []byte("1"), nil},
		{"long secret", Key{ID: "a", Secret: secret.New(make([]byte, 64))}, Deterministic, "ssn", nil, []byte("1"), nil},
		{"empty label", good, Randomized, "", nil, []byte("1"), nil},
		{"label too long", good, Randomized, strings.Repeat("l", MaxLabelLen+1), nil, []byte("1"), nil},
		{"context too long", good, Randomized, "ssn", make([]byte, MaxContextLen+1), []byte("1"), nil},
		{"empty plaintext", good, Randomized, "ssn", nil, nil, nil},
		{"plaintext too long", good, Deterministic, "ssn", nil, make([]byte, MaxPlaintextLen+1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Seal([]byte("keep"), tt.key, tt.mode, tt.label, tt.context, tt.plaintext)
			if err == nil {
				t.Fatalf("Seal accepted the input: %q", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("Seal error = %v, want one wrapping %v", err, tt.wantIs)
			}
			if string(got) != "keep" {
				t.Fatalf("Seal changed dst on error: %q", got)
			}
		})
	}
	// The limits themselves are accepted.
	edge := Key{ID: strings.Repeat("k", MaxKeyIDLen), Version: ^uint32(0), Secret: good.Secret}
	for _, mode := range modes {
		text := mustSeal(t, edge, mode, strings.Repeat("l", MaxLabelLen), make([]byte, MaxContextLen), []byte("1"))
		if _, err := Open(nil, edge, strings.Repeat("l", MaxLabelLen), make([]byte, MaxContextLen), text); err != nil {
			t.Fatalf("%s at the limits: Open: %v", mode, err)
		}
	}
}

func TestOpenRejectsInvalidKeyOrLabel(t *testing.T) {
	key := testKey("a", 1, 1)
	text := mustSeal(t, key, Randomized, "ssn", nil, []byte("1"))
	tests := []struct {
		name  string
		key   Key
		label string
		ctx   []byte
	}{
		{"nil secret", Key{ID: "a", Version: 1}, "ssn", nil},
		{"short secret", Key{ID: "a", Version: 1, Secret: secret.New(make([]byte, 31))}, "ssn", nil},
		{"empty label", key, "", nil},
		{"context too long", key, "ssn", make([]byte, MaxContextLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open([]byte("keep"), tt.key, tt.label, tt.ctx, text)
			if err == nil || errors.Is(err, ErrAuthentication) || errors.Is(err, ErrMalformed) {
				t.Fatalf("Open error = %v, want an input error", err)
			}
			if string(got) != "keep" {
				t.Fatalf("Open changed dst on error: %q", got)
			}
		})
	}
}

// TestInPlace checks that dst may share memory with the input, as the docs promise.
func TestInPlace(t *testing.T) {
	key := testKey("tenant-acme", 1, 1)
	for _, mode := range modes {
		buf := make([]byte, 0, 4096)
		buf = append(buf, `"secret value"`...)
		text, err := Seal(buf[:0], key, mode, "f", nil, buf)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(text)
		pt, err := Open(text[:0], key, "f", nil, text)
		if err != nil {
			t.Fatalf("%s: Open in place: %v", mode, err)
		}
		if string(pt) != `"secret value"` {
			t.Fatalf("%s: Open in place = %q", mode, pt)
		}
		if _, err := Open(nil, key, "f", nil, want); err != nil {
			t.Fatalf("%s: Seal in place produced a bad ciphertext: %v", mode, err)
		}
	}
}

// TestConcurrentUse seals and opens with one key from many goroutines, starting cold so the
// derivation itself races (run with -race).
func TestConcurrentUse(t *testing.T) {
	key := testKey("tenant-acme", 1, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			mode := modes[g%2]
			var dst, out []byte
			for i := range 50 {
				pt := []byte{'"', byte('a' + g), byte('a' + i%26), '"'}
				var err error
				if dst, err = Seal(dst[:0], key, mode, "f", nil, pt); err != nil {
					errs <- err
					return
				}
				if out, err = Open(out[:0], key, "f", nil, dst); err != nil || !bytes.Equal(out, pt) {
					errs <- errors.Join(errors.New("round trip failed"), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWarmKeyAllocations pins the allocation profile that the benchmark target depends on: with a
// warm key and a reused dst, Seal and Open allocate no more than the Tink primitive they call
// (the one buffer it returns): header, associated data and base64 live in dst and pooled scratch.
func TestWarmKeyAllocations(t *testing.T) {
	key := testKey("tenant-acme", 1, 1)
	pt := bytes.Repeat([]byte("x"), 64)
	tests := []struct {
		mode       Mode
		wantAtMost func(t *testing.T, ad []byte) (seal, open float64)
	}{
		{Randomized, func(t *testing.T, ad []byte) (float64, float64) {
			s, err := key.suite(Randomized)
			if err != nil {
				t.Fatal(err)
			}
			ct, err := s.aead.Encrypt(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			return testing.AllocsPerRun(200, func() { _, _ = s.aead.Encrypt(pt, ad) }),
				testing.AllocsPerRun(200, func() { _, _ = s.aead.Decrypt(ct, ad) })
		}},
		{Deterministic, func(t *testing.T, ad []byte) (float64, float64) {
			s, err := key.suite(Deterministic)
			if err != nil {
				t.Fatal(err)
			}
			ct, err := s.daead.EncryptDeterministically(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			return testing.AllocsPerRun(200, func() { _, _ = s.daead.EncryptDeterministically(pt, ad) }),
				testing.AllocsPerRun(200, func() { _, _ = s.daead.DecryptDeterministically(ct, ad) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			ad := appendAD(appendHeader(nil, tt.mode, key.ID, key.Version), "ssn", nil)
			maxSeal, maxOpen := tt.wantAtMost(t, ad)
			dst := mustSeal(t, key, tt.mode, "ssn", nil, pt)
			text := bytes.Clone(dst)
			out := make([]byte, 0, 128)
			seal := testing.AllocsPerRun(200, func() {
				dst, _ = Seal(dst[:0], key, tt.mode, "ssn", nil, pt)
			})
			open := testing.AllocsPerRun(200, func() {
				out, _ = Open(out[:0], key, "ssn", nil, text)
			})
			if seal > maxSeal || open > maxOpen {
				t.Errorf("allocations per Seal = %v (want <= %v), per Open = %v (want <= %v)", seal, maxSeal, open, maxOpen)
			}
		})
	}
}

func TestModeText(t *testing.T) {
	for _, m := range modes {
		b, err := m.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Mode
		if err := back.UnmarshalText(b); err != nil || back != m {
			t.Fatalf("UnmarshalText(%q) = %v, %v", b, back, err)
		}
	}
	if _, err := Mode(0).MarshalText(); err == nil {
		t.Error("MarshalText accepted mode 0")
	}
	var m Mode
	for _, s := range []string{"", "Randomized", "aes-gcm", "1"} {
		if err := m.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", s)
		}
	}
	if got := Mode(9).String(); got != "mode(9)" {
		t.Errorf("Mode(9).String() = %q", got)
	}
}

// TestHeaderCacheFollowsKey seals alternately under two key ids that share one secret: the
// header cached on the secret's primitive must follow the key passed in.
func TestHeaderCacheFollowsKey(t *testing.T) {
	a := testKey("tenant-a", 1, 1)
	b := Key{ID: "tenant-b", Version: 9, Secret: a.Secret}
	bad := Key{ID: "bad id", Version: 1, Secret: a.Secret}
	for i := range 6 {
		k := []Key{a, b}[i%2]
		for _, mode := range modes {
			h, err := Parse(mustSeal(t, k, mode, "f", nil, []byte("1")))
			if err != nil || h.KeyID != k.ID || h.KeyVersion != k.Version {
				t.Fatalf("sealed under %s/%d: Parse = %+v, %v", k.ID, k.Version, h, err)
			}
			if _, err := Seal(nil, bad, mode, "f", nil, []byte("1")); err == nil {
				t.Fatal("Seal accepted an invalid key id sharing a warm secret")
			}
		}
	}
}

// cutToInvalidLength drops the fewest trailing characters that leave a base64 body of length
// 1 mod 4, a length no byte string encodes to.
func cutToInvalidLength(text []byte) []byte {
	n := len(text)
	for (n-len(Prefix))%4 != 1 {
		n--
	}
	return text[:n]
}

func TestKeyVersionFor(t *testing.T) {
	k := testKey("tenant-acme", 7, 1)
	text := mustSeal(t, k, Randomized, "ssn", nil, []byte(`"123-45-6789"`))
	tests := []struct {
		name    string
		text    []byte
		keyID   string
		want    uint32
		wantErr error
	}{
		{"names the key", text, "tenant-acme", 7, nil},
		{"names another key", text, "tenant-other", 0, ErrKeyMismatch},
		{"a prefix of the id", text, "tenant-ac", 0, ErrKeyMismatch},
		{"malformed", []byte("rkms:!!!!"), "tenant-acme", 0, ErrMalformed},
		{"not a ciphertext", []byte(`"123-45-6789"`), "tenant-acme", 0, ErrMalformed},
		// Cutting one character is not always malformed: the shorter text is canonical base64
		// whenever the new last character's unused bits happen to be zero (1 time in 4 or 16,
		// by the random nonce), and only authentication then catches it. These cuts are
		// malformed whatever the random bytes are.
		{"truncated to an invalid base64 length", cutToInvalidLength(text), "tenant-acme", 0, ErrMalformed},
		{"truncated inside the header", text[:len(Prefix)+8], "tenant-acme", 0, ErrMalformed},
		{"truncated below the shortest ciphertext", text[:minTextLen-1], "tenant-acme", 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KeyVersionFor(tt.text, tt.keyID)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("KeyVersionFor = %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
			// It agrees with Parse.
			h, perr := Parse(tt.text)
			if (perr == nil) != (err == nil || errors.Is(err, ErrKeyMismatch)) || (perr == nil && h.KeyID == tt.keyID && h.KeyVersion != got) {
				t.Fatalf("Parse = %+v, %v; KeyVersionFor = %d, %v", h, perr, got, err)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = KeyVersionFor(text, "tenant-acme") }); n != 0 {
		t.Fatalf("KeyVersionFor: %v allocations, want 0", n)
	}
}
