package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rkms/rkms/extproc"
)

// Metrics holds rkms's collectors and the registry that serves them. It is safe for concurrent
// use.
type Metrics struct {
	reg *prometheus.Registry

	kmsLatency   *prometheus.HistogramVec
	kmsErrors    *prometheus.CounterVec
	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	extRequests  *prometheus.CounterVec
	extLatency   *prometheus.HistogramVec
	extFields    *prometheus.CounterVec
	extRefused   *prometheus.CounterVec
	extReveals   *prometheus.CounterVec
	adminAuth    *prometheus.CounterVec
	adminDenied  *prometheus.CounterVec
	rewrapItems  *prometheus.CounterVec
}

var _ extproc.Observer = (*Metrics)(nil)

// callBuckets cover a KMS or store call: 1 ms to about 10 s.
var callBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 11)

// messageBuckets cover one ext_proc message: 100 µs to about 6 s (Envoy's message_timeout is 2 s).
var messageBuckets = prometheus.ExponentialBuckets(0.0001, 3, 11)

// New returns Metrics with every rkms family registered, plus the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		kmsLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rkms_kms_request_duration_seconds", Help: "Duration of KMS calls, by region and operation.",
			Buckets: callBuckets,
		}, []string{"region", "op"}),
		kmsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rkms_kms_errors_total", Help: "KMS calls that failed, by region, operation and class (unavailable, rejected, canceled).",
		}, []string{"region", "op", "class"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rkms_store_request_duration_seconds", Help: "Duration of key store calls, by operation.",
			Buckets: callBuckets,
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rkms_store_errors_total", Help: "Key store calls that returned an error, by operation and class (not_found, exists and conflict are normal outcomes).",
		}, []string{"op", "class"}),
		extRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rkms_extproc_requests_total", Help: "ext_proc messages answered, by policy, phase, outcome (continue, refused, protocol_error) and HTTP status of a refusal.",
		}, []string{"policy", "phase", "outcome", "status"}),
		extLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rkms_extproc_processing_seconds", Help: "Time to answer one ext_proc message, by phase.",
			Buckets: messageBuckets,
		}, []string{"phase"}),
		extFields: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rkms_extproc_fields_total", Help: "JSON values encrypted or decrypted, by policy and operation.",
		}, []string{"policy", "op"}),
		adminAuth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rkms_admin_auth_failures_total", Help: "Admin API requests refused for their credentials, by result (refused: 401; throttled: 429, the address failed too often).",
		}, []string{"result"}),
		adminDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rkms_admin_forbidden_total", Help: "Admin and key API operations refused because the caller's credential does not allow them (403 / PERMISSION_DENIED), by credential name and operation.",
		}, []string{"principal", "op"}),
		rewrapItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rkms_rewrap_items_total", Help: "Ciphertexts given to Rewrap (POST /v1/rewrap, the gRPC Rewrap, rkms rewrap in process), by result: rewrapped, unchanged (already current), or the error class of the item.",
		}, []string{"result"}),
		extRefused: newRefused(),
		extReveals: newReveals(),
	}
	m.reg.MustRegister(m.kmsLatency, m.kmsErrors, m.storeLatency, m.storeErrors, m.extRequests, m.extLatency, m.extFields, m.extRefused, m.extReveals, m.adminAuth, m.adminDenied, m.rewrapItems,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the families live in (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the Prometheus text exposition of every family. It needs no authentication:
// it carries no key material and no key ids.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// AdminAuthFailure counts a refused admin API request (admin.Options.OnAuthFailure).
func (m *Metrics) AdminAuthFailure(throttled bool) {
	r := "refused"
	if throttled {
		r = "throttled"
	}
	m.adminAuth.WithLabelValues(r).Inc()
}

// AdminForbidden counts an operation refused for the caller's permissions
// (keyservice.Options.OnForbidden). Principal names come from admin.credentials and operation
// names from a closed set, so the label values are bounded by the configuration.
func (m *Metrics) AdminForbidden(principal, op string) {
	m.adminDenied.WithLabelValues(principal, op).Inc()
}

// RewrapItems counts the items of a Rewrap call with one result (keyservice.Options.OnRewrap):
// "rewrapped", "unchanged" or an error class name, a bounded set.
func (m *Metrics) RewrapItems(result string, n int) {
	m.rewrapItems.WithLabelValues(result).Add(float64(n))
}

// ObserveRequest implements extproc.Observer.
func (m *Metrics) ObserveRequest(policy, phase, outcome string, status int, dur time.Duration) {
	m.extRequests.WithLabelValues(policyLabel(policy), phase, outcome, statusLabel(status)).Inc()
	m.extLatency.WithLabelValues(phase).Observe(dur.Seconds())
}

// ObserveFields implements extproc.Observer.
func (m *Metrics) ObserveFields(policy, op string, n int) {
	m.extFields.WithLabelValues(policyLabel(policy), op).Add(float64(n))
}

func policyLabel(p string) string {
	if p == "" {
		return "none"
	}
	return p
}

// statusLabel formats the few HTTP statuses rkms answers with without allocating for the
// common ones.
func statusLabel(code int) string {
	switch code {
	case 0:
		return "0"
	case 400:
		return "400"
	case 413:
		return "413"
	case 415:
		return "415"
	case 429:
		return "429"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	if code < 100 || code > 599 {
		return "other"
	}
	return itoa3(code)
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}
