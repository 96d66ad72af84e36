package keyservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/authlimit"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/keyringtest"
	"github.com/rkms/rkms/secret"
)

const token = "s3cret-token-0123456789"

func TestNewRejects(t *testing.T) {
	if _, err := New(keyringtest.NewFake(), Options{}); err == nil {
		t.Error("New accepted an empty token")
	}
	if _, err := New(nil, Options{Token: token}); err == nil {
		t.Error("New accepted nil keys")
	}
}

// TestClassify: every keyring class has its service class and fixed message; an *Error passes
// through; the retry delay of a creation limit is kept.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err   error
		class Class
		msg   string
	}{
		{fmt.Errorf("x: %w", keyring.ErrInvalidID), InvalidArgument, msgInvalidID},
		{fmt.Errorf("x: %w", keyring.ErrNotFound), NotFound, msgNotFound},
		{fmt.Errorf("x: %w", keyring.ErrDeleted), Deleted, msgDeleted},
		{fmt.Errorf("x: %w", keyring.ErrExists), Exists, msgExists},
		{fmt.Errorf("x: %w", &keyring.CreateLimitedError{RetryAfter: 3 * time.Second}), Limited, msgLimited},
		{fmt.Errorf("x: %w", keyring.ErrUnavailable), Unavailable, msgUnavailable},
		{context.DeadlineExceeded, Unavailable, msgUnavailable},
		{context.Canceled, Canceled, msgCanceled},
		{secret.ErrWiped, Internal, msgInternal},
		{fmt.Errorf("wrapped: %w", &Error{Class: Throttled, Msg: msgThrottled}), Throttled, msgThrottled},
	} {
		e := Classify(tc.err)
		if e.Class != tc.class || e.Msg != tc.msg {
			t.Errorf("Classify(%v) = %v %q, want %v %q", tc.err, e.Class, e.Msg, tc.class, tc.msg)
		}
	}
	if e := Classify(&keyring.CreateLimitedError{RetryAfter: 3 * time.Second}); e.RetryAfter != 3*time.Second {
		t.Errorf("retry delay lost: %v", e.RetryAfter)
	}
}

// TestAuthenticate: the token rule, the throttle (with a whole-second retry delay that ends no
// sooner than the window) and the audit of refusals (none without an operation).
func TestAuthenticate(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	fails := map[bool]int{}
	s, err := New(keyringtest.NewFake(), Options{Token: token, Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
		Throttle:      authlimit.New(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }),
		OnAuthFailure: func(throttled bool) { fails[throttled]++ }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	caller := func(remote, auth string) Caller {
		return Caller{API: audit.APIHTTP, Remote: remote, Authorization: auth}
	}
	for _, auth := range []string{"Bearer " + token, "bearer " + token, "BEARER  " + token + " "} {
		if _, err := s.Authenticate(ctx, caller("192.0.2.1:1", auth), audit.OpRead, "a"); err != nil {
			t.Errorf("%q: %v", auth, err)
		}
	}
	for _, auth := range []string{"", "Bearer", "Bearer " + strings.ToUpper(token), "Basic " + token, token} {
		if _, err := s.Authenticate(ctx, caller("192.0.2.2:1", auth), "", "a"); Classify(err).Class != Unauthenticated {
			t.Errorf("%q: %v, want unauthenticated", auth, err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("refusals without an operation were audited: %s", buf.String())
	}
	for range authlimit.Failures - 5 {
		_, _ = s.Authenticate(ctx, caller("192.0.2.2:2", "Bearer nope"), audit.OpDelete, "a")
	}
	mu.Lock()
	now = now.Add(authlimit.Window / 2)
	mu.Unlock()
	_, err = s.Authenticate(ctx, caller("192.0.2.2:3", "Bearer "+token), audit.OpRotate, "a")
	if e := Classify(err); e.Class != Throttled || e.RetryAfter != authlimit.Window/2+time.Second {
		t.Fatalf("throttled: %v (retry after %v), want throttled, %v", err, e.RetryAfter, authlimit.Window/2+time.Second)
	}
	if fails[false] != authlimit.Failures || fails[true] != 1 {
		t.Errorf("OnAuthFailure: %v", fails)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != authlimit.Failures-5+1 || !strings.Contains(lines[len(lines)-1], `"op":"rotate"`) ||
		!strings.Contains(lines[len(lines)-1], `"result":"denied"`) {
		t.Errorf("audit records of refusals:\n%s", buf.String())
	}
}

// TestSession: ids are validated before the keyring sees them, operations are bounded by the
// timeout, a canceled caller is Canceled, and Malformed audits an invalid request.
func TestSession(t *testing.T) {
	var buf bytes.Buffer
	f := keyringtest.NewFake()
	s, err := New(f, Options{Token: token, Timeout: 20 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sess, err := s.Authenticate(ctx, Caller{API: audit.APIGRPC, Authorization: "Bearer " + token}, audit.OpRead, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Rotate(ctx, "bad id"); Classify(err).Class != InvalidArgument || Classify(err).Msg != msgIDRule {
		t.Errorf("bad id: %v", err)
	}
	var got []byte
	if err := sess.Get(ctx, "a", func(id string, v uint32, key []byte) { got = append(got, key...) }); err != nil || len(got) != 32 {
		t.Fatalf("Get: %v, %d key bytes", err, len(got))
	}
	f.Delay = time.Second
	if err := sess.Delete(ctx, "a"); Classify(err).Class != Unavailable {
		t.Errorf("past the timeout: %v, want unavailable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := sess.Delete(cctx, "a"); Classify(err).Class != Canceled {
		t.Errorf("canceled: %v, want canceled", err)
	}
	err = sess.Malformed(ctx, audit.OpRead, "exactly one id", fmt.Errorf("2 ids: %w", keyring.ErrInvalidID))
	if e := Classify(err); e.Class != InvalidArgument || e.Msg != "exactly one id" || !errors.Is(err, keyring.ErrInvalidID) {
		t.Errorf("Malformed: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, `"result":"invalid"`) || !strings.Contains(last, `"api":"grpc"`) {
		t.Errorf("Malformed record: %s", last)
	}
}
