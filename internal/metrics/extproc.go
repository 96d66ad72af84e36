package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rkms/rkms/extproc"
)

var _ extproc.LimitObserver = (*Metrics)(nil)

// refusedReasons are the values of rkms_extproc_refused_total's reason label, all present from
// the start so that a rate over them never misses its first increase.
var refusedReasons = []string{
	extproc.RefusedStreamLimit, extproc.RefusedClientShare, extproc.RefusedTenantShare, extproc.RefusedMemory,
	extproc.RefusedFirstMessageTimeout, extproc.RefusedIdleTimeout, extproc.RefusedStreamTimeout, extproc.RefusedProtocol, extproc.RefusedLargeBody,
}

func newRefused() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rkms_extproc_refused_total",
		Help: "ext_proc streams or messages refused by a limit, by reason (stream_limit, client_share, tenant_share, memory, first_message_timeout, idle_timeout, stream_timeout, protocol).",
	}, []string{"reason"})
	for _, r := range refusedReasons {
		c.WithLabelValues(r)
	}
	return c
}

// ObserveRefused implements extproc.LimitObserver.
func (m *Metrics) ObserveRefused(reason string) { m.extRefused.WithLabelValues(reason).Inc() }

// ExtProcStats is what the gauges read from the ext_proc server at scrape time.
type ExtProcStats interface{ Stats() extproc.Stats }

var _ ExtProcStats = (*extproc.Server)(nil)

// WatchExtProc registers gauges that read s's streams in flight and memory budget at each
// scrape. Call it once per Metrics.
func (m *Metrics) WatchExtProc(s ExtProcStats) error {
	for _, g := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rkms_extproc_streams_in_flight", Help: "ext_proc streams (HTTP requests) in flight."},
			func() float64 { return float64(s.Stats().Streams) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rkms_extproc_memory_budget_bytes", Help: "The memory budget for bodies held across all ext_proc streams (extproc.memory_budget_bytes)."},
			func() float64 { return float64(s.Stats().BudgetBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rkms_extproc_memory_reserved_bytes", Help: "Bytes of the memory budget reserved by bodies now."},
			func() float64 { return float64(s.Stats().ReservedBytes) }),
	} {
		if err := m.reg.Register(g); err != nil {
			return err
		}
	}
	return nil
}

var _ extproc.RevealObserver = (*Metrics)(nil)

func newReveals() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rkms_extproc_reveals_total",
		Help: "Decrypted response values revealed under response.reveal, by policy, rule (\"default\" when no rule named the field) and action (full, mask:..., redact, token, ciphertext; redact also when a mask or token met a value it cannot apply to).",
	}, []string{"policy", "rule", "action"})
}

// ObserveReveal implements extproc.RevealObserver. Policy, rule and action come from the
// configuration, so the label values are bounded by it.
func (m *Metrics) ObserveReveal(policy, rule, action string, n int) {
	m.extReveals.WithLabelValues(policyLabel(policy), rule, action).Add(float64(n))
}
