package envelope

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

// fuzzSeeds are valid and nearly valid texts under key fuzzKey() with label "ssn".
func fuzzSeeds(t testing.TB) [][]byte {
	key := fuzzKey()
	seeds := [][]byte{
		[]byte(""), []byte("rkms:"), []byte("rkms:AQEK"), []byte("rkms:AQEAaw"),
		encodeBinary(binaryOf(1, 1, "fuzz", 1, 29)),
		encodeBinary(binaryOf(1, 2, "fuzz", 1, 17)),
		encodeBinary(binaryOf(2, 1, "fuzz", 1, 29)),
	}
	for _, mode := range modes {
		for _, pt := range []string{`"123-45-6789"`, `0`, `{"a":[1,true,null]}`} {
			text := mustSeal(t, key, mode, "ssn", nil, []byte(pt))
			seeds = append(seeds, text, append(bytes.Clone(text), '"'), text[:len(text)-1])
		}
	}
	return seeds
}

func fuzzKey() Key { return testKey("fuzz", 1, 0x11) }

// isDecodeError reports whether err is one of the errors a decoder may return for bad text.
func isDecodeError(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupportedVersion)
}

// checkCanonical asserts that an accepted text is the one encoding of its binary form and that
// the header Parse returned re-encodes to the header bytes.
func checkCanonical(t *testing.T, text []byte, h Header) {
	t.Helper()
	bin, err := base64.RawURLEncoding.Strict().DecodeString(string(text[len(Prefix):]))
	if err != nil {
		t.Fatalf("accepted text %q is not strict base64url: %v", text, err)
	}
	if re := encodeBinary(bin); !bytes.Equal(re, text) {
		t.Fatalf("accepted text %q re-encodes as %q", text, re)
	}
	header := appendHeader(nil, h.Mode, h.KeyID, h.KeyVersion)
	if h.FormatVersion != FormatVersion || !bytes.HasPrefix(bin, header) {
		t.Fatalf("header %+v does not re-encode to the binary's header %x", h, bin[:min(len(bin), len(header))])
	}
	ctLen := len(bin) - len(header)
	if ctLen <= h.Mode.overhead() || ctLen > h.Mode.overhead()+MaxPlaintextLen {
		t.Fatalf("accepted a %s ciphertext of %d bytes", h.Mode, ctLen)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	key := fuzzKey()
	f.Fuzz(func(t *testing.T, text []byte) {
		h, err := Parse(text)
		_, openErr := Open(nil, key, "ssn", nil, text)
		if err != nil {
			if !isDecodeError(err) {
				t.Fatalf("Parse error %v is neither ErrMalformed nor ErrUnsupportedVersion", err)
			}
			if !errors.Is(openErr, ErrMalformed) && !errors.Is(openErr, ErrUnsupportedVersion) {
				t.Fatalf("Parse rejected %q (%v) but Open said %v", text, err, openErr)
			}
			return
		}
		if !IsCiphertext(text) {
			t.Fatalf("Parse accepted %q without the prefix", text)
		}
		checkCanonical(t, text, h)
		if isDecodeError(openErr) {
			t.Fatalf("Parse accepted %q but Open rejected its structure: %v", text, openErr)
		}
	})
}

func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, "ssn", []byte(nil))
	}
	f.Add([]byte(nil), "", []byte("ctx"))
	key := fuzzKey()
	f.Fuzz(func(t *testing.T, text []byte, label string, context []byte) {
		pt, err := Open([]byte("dst:"), key, label, context, text)
		if err != nil {
			if string(pt) != "dst:" {
				t.Fatalf("Open changed dst on error %v", err)
			}
			if validateLabelContext(label, context) == nil && !isDecodeError(err) &&
				!errors.Is(err, ErrKeyMismatch) && err != ErrAuthentication {
				t.Fatalf("Open error %v is not one of the package's errors", err)
			}
			return
		}
		pt = pt[len("dst:"):]
		h, err := Parse(text)
		if err != nil {
			t.Fatalf("Open accepted %q but Parse said %v", text, err)
		}
		checkCanonical(t, text, h)
		if h.KeyID != key.ID || h.KeyVersion != key.Version {
			t.Fatalf("Open accepted a header for another key: %+v", h)
		}
		if h.Mode == Deterministic {
			again, err := Seal(nil, key, Deterministic, label, context, pt)
			if err != nil || !bytes.Equal(again, text) {
				t.Fatalf("resealing %q gave %q, %v; want %q", pt, again, err, text)
			}
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(`"123-45-6789"`), "ssn", []byte(nil), false)
	f.Add([]byte(`{"a":[1,2,{"b":null}]}`), "address", []byte("tenant=acme"), true)
	f.Add([]byte(`-0.5e10`), "n", []byte{0, 1, 2}, false)
	f.Add([]byte{0xff, 0x00, '"'}, "\x00", []byte(nil), true)
	f.Add([]byte(nil), "ssn", []byte(nil), false)
	f.Add([]byte("1"), "", []byte(nil), true)
	key := fuzzKey()
	f.Fuzz(func(t *testing.T, plaintext []byte, label string, context []byte, deterministic bool) {
		mode := Randomized
		if deterministic {
			mode = Deterministic
		}
		text, err := Seal(nil, key, mode, label, context, plaintext)
		valid := len(plaintext) > 0 && len(plaintext) <= MaxPlaintextLen && validateLabelContext(label, context) == nil
		if err != nil {
			if valid {
				t.Fatalf("Seal rejected valid input: %v", err)
			}
			return
		}
		if !valid {
			t.Fatalf("Seal accepted invalid input: plaintext %d bytes, label %d bytes, context %d bytes",
				len(plaintext), len(label), len(context))
		}
		h, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse of Seal output: %v", err)
		}
		if h != (Header{FormatVersion: 1, Mode: mode, KeyID: key.ID, KeyVersion: key.Version}) {
			t.Fatalf("Parse = %+v", h)
		}
		checkCanonical(t, text, h)
		got, err := Open(nil, key, label, context, text)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("Open = %q, %v; want %q", got, err, plaintext)
		}
		if deterministic {
			if again := mustSeal(t, key, mode, label, context, plaintext); !bytes.Equal(again, text) {
				t.Fatalf("deterministic Seal gave %q then %q", text, again)
			}
		}
		if len(context) == MaxContextLen {
			return
		}
		if _, err := Open(nil, key, label, append(bytes.Clone(context), 0), text); err != ErrAuthentication {
			t.Fatalf("Open with a longer context = %v, want ErrAuthentication", err)
		}
	})
}
