package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rkms/rkms/keyring"
)

// hierCollector turns the keyring's store-read and hierarchical mode counters into series at
// each scrape. KMS calls are counted per region by WrapRegion and store calls by WrapStore, in
// either mode.
type hierCollector struct {
	k     KeyringStats
	descs []hierDesc
}

// hierDesc is one series and how to read it from the keyring's stats.
type hierDesc struct {
	d     *prometheus.Desc
	kind  prometheus.ValueType
	value func(keyring.Stats) float64
}

var _ prometheus.Collector = (*hierCollector)(nil)

func newHierCollector(k KeyringStats) *hierCollector {
	counter := func(d *prometheus.Desc, f func(keyring.Stats) uint64) hierDesc {
		return hierDesc{d, prometheus.CounterValue, func(s keyring.Stats) float64 { return float64(f(s)) }}
	}
	return &hierCollector{k: k, descs: []hierDesc{
		counter(prometheus.NewDesc("rkms_keyring_store_reads_total", "Key records the keyring read from the store (either mode).", nil, nil),
			func(s keyring.Stats) uint64 { return s.StoreReads }),
		counter(prometheus.NewDesc("rkms_keyring_local_unwraps_total", "Data keys unwrapped locally under a branch key (hierarchical mode): no KMS call.", nil, nil),
			func(s keyring.Stats) uint64 { return s.LocalUnwraps }),
		counter(prometheus.NewDesc("rkms_keyring_local_wraps_total", "Data keys wrapped locally under a branch key (creations and re-wraps).", nil, nil),
			func(s keyring.Stats) uint64 { return s.LocalWraps }),
		counter(prometheus.NewDesc("rkms_keyring_wrapped_cache_hits_total", "Plaintext cache misses served a record from the wrapped-record cache (no store read).", nil, nil),
			func(s keyring.Stats) uint64 { return s.WrappedHits }),
		counter(prometheus.NewDesc("rkms_keyring_wrapped_cache_misses_total", "Wrapped-record cache misses (a store read follows).", nil, nil),
			func(s keyring.Stats) uint64 { return s.WrappedMisses }),
		{prometheus.NewDesc("rkms_keyring_wrapped_cache_records", "Branch-wrapped records in the wrapped-record cache now.", nil, nil),
			prometheus.GaugeValue, func(s keyring.Stats) float64 { return float64(s.WrappedEntries) }},
		counter(prometheus.NewDesc("rkms_keyring_rewrapped_total", "Key versions re-wrapped under a newer branch key version (lazily or by the background pass).", nil, nil),
			func(s keyring.Stats) uint64 { return s.Rewrapped }),
		counter(prometheus.NewDesc("rkms_keyring_rewrap_scanned_total", "Records examined by background re-wrap passes.", nil, nil),
			func(s keyring.Stats) uint64 { return s.RewrapScanned }),
		counter(prometheus.NewDesc("rkms_keyring_rewrap_passes_total", "Background re-wrap passes started.", nil, nil),
			func(s keyring.Stats) uint64 { return s.RewrapPasses }),
		counter(prometheus.NewDesc("rkms_keyring_rewrap_passes_done_total", "Background re-wrap passes that reached the end of the store.", nil, nil),
			func(s keyring.Stats) uint64 { return s.RewrapPassesDone }),
		{prometheus.NewDesc("rkms_keyring_rewrap_running", "1 while a background re-wrap pass is under way.", nil, nil),
			prometheus.GaugeValue, func(s keyring.Stats) float64 {
				if s.RewrapRunning {
					return 1
				}
				return 0
			}},
		counter(prometheus.NewDesc("rkms_keyring_branch_retires_total", "Branch keys whose old versions this replica retired after kms.hierarchical.retire_grace.", nil, nil),
			func(s keyring.Stats) uint64 { return s.BranchRetires }),
	}}
}

func (c *hierCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.d
	}
}

func (c *hierCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.k.Stats()
	for _, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d.d, d.kind, d.value(st))
	}
}
