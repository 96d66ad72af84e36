package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rkms/rkms/keyring"
)

// KMS operation label values.
const (
	opGenerate = "generate_data_key"
	opEncrypt  = "encrypt"
	opDecrypt  = "decrypt"
)

// region times and counts every call of a wrapped keyring.Region. It sees plaintext data keys
// pass through and never records or retains them.
type region struct {
	keyring.Region
	m                  *Metrics
	name               string
	generate, enc, dec prometheus.Observer
}

var _ keyring.Region = (*region)(nil)

// WrapRegion returns r with its calls measured: latency per operation and errors by class,
// labelled with r.Name() (region names are configured, hence bounded).
func (m *Metrics) WrapRegion(r keyring.Region) keyring.Region {
	n := r.Name()
	// Every error series exists from the start at 0, so that rate() and alerts see the first error.
	for _, op := range []string{opGenerate, opEncrypt, opDecrypt} {
		for _, class := range kmsClasses {
			m.kmsErrors.WithLabelValues(n, op, class)
		}
	}
	return &region{Region: r, m: m, name: n,
		generate: m.kmsLatency.WithLabelValues(n, opGenerate),
		enc:      m.kmsLatency.WithLabelValues(n, opEncrypt),
		dec:      m.kmsLatency.WithLabelValues(n, opDecrypt),
	}
}

func (r *region) GenerateDataKey(ctx context.Context, encCtx map[string]string) ([]byte, []byte, error) {
	start := time.Now()
	pt, wrapped, err := r.Region.GenerateDataKey(ctx, encCtx)
	r.done(r.generate, opGenerate, start, err)
	return pt, wrapped, err
}

func (r *region) Encrypt(ctx context.Context, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	start := time.Now()
	wrapped, err := r.Region.Encrypt(ctx, plaintext, encCtx)
	r.done(r.enc, opEncrypt, start, err)
	return wrapped, err
}

func (r *region) Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	start := time.Now()
	pt, err := r.Region.Decrypt(ctx, wrapped, encCtx)
	r.done(r.dec, opDecrypt, start, err)
	return pt, err
}

func (r *region) done(lat prometheus.Observer, op string, start time.Time, err error) {
	lat.Observe(time.Since(start).Seconds())
	if err != nil {
		r.m.kmsErrors.WithLabelValues(r.name, op, kmsClass(err)).Inc()
	}
}

// kmsClasses are the values of rkms_kms_errors_total's class label.
var kmsClasses = []string{"unavailable", "rejected", "canceled"}

// kmsClass follows the keyring's classification: a region that answered and refused is
// "rejected"; anything else that is not a cancellation counts as unavailability.
func kmsClass(err error) string {
	switch {
	case errors.Is(err, keyring.ErrRegionRejected):
		return "rejected"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "unavailable"
	}
}
