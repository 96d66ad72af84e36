package keyring

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{fmt.Errorf("get: %w", ErrInvalidID), ClassInvalid},
		{fmt.Errorf("get: %w", ErrNotFound), ClassNotFound},
		{fmt.Errorf("get: %w", &CreateLimitedError{RetryAfter: 3 * time.Second}), ClassLimited},
		{fmt.Errorf("get: %w", ErrUnavailable), ClassUnavailable},
		{ErrClosed, ClassUnavailable},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), ClassUnavailable},
		{fmt.Errorf("%w: %w", ErrUnavailable, context.Canceled), ClassUnavailable},
		{fmt.Errorf("get: %w", context.Canceled), ClassCanceled},
		{errors.New("every region refused"), ClassInternal},
		{fmt.Errorf("get version: %w", ErrVersionRetired), ClassRetired},
		{fmt.Errorf("seal: %w", ErrSealLimit), ClassUnavailable},
	} {
		if got := ClassOf(tc.err); got != tc.want {
			t.Errorf("ClassOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want time.Duration
	}{
		{fmt.Errorf("create: %w", &CreateLimitedError{RetryAfter: 3 * time.Second}), 3 * time.Second},
		{&CreateLimitedError{RetryAfter: 10 * time.Millisecond}, time.Second},
		{ErrCreateLimited, time.Second},
	} {
		if got := RetryAfter(tc.err); got != tc.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
