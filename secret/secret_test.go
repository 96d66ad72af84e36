package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestKeyNeverPrints(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789abcdef")
	k := New(append([]byte(nil), raw...))
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "key", k)
	jsonOut, _ := json.Marshal(struct{ K *Key }{k})
	outputs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %X %q", k, k, k, k, k, k, k),
		logBuf.String(), string(jsonOut), fmt.Errorf("wrap: %v", k).Error(),
	}
	for _, out := range outputs {
		if strings.Contains(out, string(raw)) || strings.Contains(out, fmt.Sprintf("%x", raw)) || strings.Contains(out, "0123456789") {
			t.Fatalf("key material printed: %s", out)
		}
		if !strings.Contains(out, redacted) {
			t.Fatalf("no redaction in %q", out)
		}
	}
}

func TestUseAndWipe(t *testing.T) {
	buf := []byte{1, 2, 3, 4}
	k := New(buf)
	if k.Len() != 4 {
		t.Fatal("len")
	}
	var seen []byte
	if err := k.Use(func(b []byte) error { seen = append(seen, b...); return nil }); err != nil || !bytes.Equal(seen, []byte{1, 2, 3, 4}) {
		t.Fatalf("Use: %v %v", seen, err)
	}
	k.Wipe()
	if !bytes.Equal(buf, []byte{0, 0, 0, 0}) {
		t.Fatalf("Wipe left bytes: %v", buf)
	}
	if err := k.Use(func([]byte) error { t.Fatal("fn called after wipe"); return nil }); !errors.Is(err, ErrWiped) {
		t.Fatalf("Use after Wipe: %v", err)
	}
	if _, err := k.Derive(1, func([]byte) (any, error) { return 1, nil }); !errors.Is(err, ErrWiped) {
		t.Fatalf("Derive after Wipe: %v", err)
	}
	k.Wipe() // idempotent
	if k.Len() != 0 {
		t.Fatal("len after wipe")
	}
}

type tagA struct{}
type tagB struct{}

func TestDeriveMemoizesPerTag(t *testing.T) {
	k := New([]byte{7})
	calls := map[string]int{}
	var mu sync.Mutex
	derive := func(name string) func([]byte) (any, error) {
		return func(b []byte) (any, error) {
			mu.Lock()
			calls[name]++
			mu.Unlock()
			return name + fmt.Sprint(b[0]), nil
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			v, err := k.Derive(tagA{}, derive("a"))
			if err != nil || v != "a7" {
				t.Errorf("Derive a: %v %v", v, err)
			}
		}()
		go func() {
			defer wg.Done()
			v, err := k.Derive(tagB{}, derive("b"))
			if err != nil || v != "b7" {
				t.Errorf("Derive b: %v %v", v, err)
			}
		}()
	}
	wg.Wait()
	if calls["a"] != 1 || calls["b"] != 1 {
		t.Fatalf("derivations ran %v times, want once each", calls)
	}
}

func TestDeriveErrorIsReturned(t *testing.T) {
	k := New([]byte{1})
	boom := errors.New("boom")
	if _, err := k.Derive(tagA{}, func([]byte) (any, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func TestWipeDuringUseWaits(t *testing.T) {
	k := New([]byte{9, 9})
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan []byte)
	go func() {
		_ = k.Use(func(b []byte) error {
			close(started)
			<-release
			done <- append([]byte(nil), b...)
			return nil
		})
	}()
	<-started
	wiped := make(chan struct{})
	go func() { k.Wipe(); close(wiped) }()
	close(release)
	if got := <-done; !bytes.Equal(got, []byte{9, 9}) {
		t.Fatalf("a use in progress saw wiped bytes: %v", got)
	}
	<-wiped
}

func BenchmarkDeriveHit(b *testing.B) {
	k := New(make([]byte, 32))
	fn := func([]byte) (any, error) { return 1, nil }
	_, _ = k.Derive(tagA{}, fn)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Derive(tagA{}, fn); err != nil {
			b.Fatal(err)
		}
	}
}

type tagN int

func TestDeriveTableOfTags(t *testing.T) {
	tests := []struct {
		name string
		tags []any
	}{
		{"one tag", []any{tagA{}}},
		{"two struct tags", []any{tagA{}, tagB{}}},
		{"same type, distinct values", []any{tagN(1), tagN(2), tagN(3)}},
		{"mixed types, equal underlying values", []any{tagN(1), 1, "1", tagA{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := New([]byte{3})
			calls := 0
			for round := 0; round < 3; round++ {
				for i, tag := range tt.tags {
					v, err := k.Derive(tag, func(b []byte) (any, error) { calls++; return i*10 + int(b[0]), nil })
					if err != nil || v != i*10+3 {
						t.Fatalf("round %d tag %v: got %v, %v; want %d", round, tag, v, err, i*10+3)
					}
				}
			}
			if calls != len(tt.tags) {
				t.Fatalf("%d derivations for %d tags, want one each", calls, len(tt.tags))
			}
		})
	}
}

func TestDeriveAfterWipe(t *testing.T) {
	k := New([]byte{5})
	if _, err := k.Derive(tagA{}, func([]byte) (any, error) { return "a", nil }); err != nil {
		t.Fatal(err)
	}
	k.Wipe()
	if k.derived.Load() != nil {
		t.Fatal("Wipe kept derived values reachable from the key")
	}
	for _, tag := range []any{tagA{}, tagB{}} {
		v, err := k.Derive(tag, func([]byte) (any, error) {
			t.Errorf("derivation of %T ran on a wiped key", tag)
			return "x", nil
		})
		if !errors.Is(err, ErrWiped) || v != nil {
			t.Fatalf("Derive(%T) after Wipe = %v, %v; want nil, ErrWiped", tag, v, err)
		}
	}
	if k.derived.Load() != nil {
		t.Fatal("Derive after Wipe left a derived value on the key")
	}
}

// TestDeriveRacesWipe checks that no Derive succeeds after Wipe has returned and that nothing
// derived stays reachable from a wiped key (run with -race).
func TestDeriveRacesWipe(t *testing.T) {
	for i := 0; i < 200; i++ {
		k := New([]byte{1, 2})
		var wg sync.WaitGroup
		wiped := make(chan struct{})
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tag := tagN(g % 2)
				for j := 0; j < 20; j++ {
					select {
					case <-wiped:
						if _, err := k.Derive(tag, func(b []byte) (any, error) { return len(b), nil }); !errors.Is(err, ErrWiped) {
							t.Errorf("Derive after Wipe returned %v", err)
						}
						return
					default:
					}
					v, err := k.Derive(tag, func(b []byte) (any, error) { return len(b), nil })
					if err == nil && v != 2 {
						t.Errorf("Derive = %v, want 2", v)
					}
					if err != nil && !errors.Is(err, ErrWiped) {
						t.Errorf("Derive: %v", err)
					}
				}
			}()
		}
		k.Wipe()
		close(wiped)
		wg.Wait()
		if k.derived.Load() != nil {
			t.Fatal("a derived value stayed reachable from a wiped key")
		}
	}
}

func TestDeriveHitDoesNotAllocate(t *testing.T) {
	k := New(make([]byte, 32))
	fn := func([]byte) (any, error) { return &struct{}{}, nil }
	for _, tag := range []any{tagA{}, tagB{}} {
		if _, err := k.Derive(tag, fn); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = k.Derive(tagA{}, fn) }); n != 0 {
		t.Fatalf("Derive on a memoized tag: %v allocations, want 0", n)
	}
}

// TestKeyIsSmall guards the per-key footprint: rkms keeps one Key per cached data key version.
func TestKeyIsSmall(t *testing.T) {
	if got := unsafe.Sizeof(Key{}); got > 80 {
		t.Fatalf("Key is %d bytes, want at most 80 (the 80-byte size class; rkms caches 100,000 keys)", got)
	}
}
