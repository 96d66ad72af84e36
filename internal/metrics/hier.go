package metrics

import "github.com/prometheus/client_golang/prometheus"

// hierCollector turns the keyring's hierarchical mode counters into series at each scrape. KMS
// calls are counted per region by WrapRegion and store calls by WrapStore, in either mode.
type hierCollector struct {
	k    KeyringStats
	d    map[string]*prometheus.Desc
	keys []string
}

var _ prometheus.Collector = (*hierCollector)(nil)

func newHierCollector(k KeyringStats) *hierCollector {
	c := &hierCollector{k: k, d: map[string]*prometheus.Desc{}}
	for _, m := range []struct{ name, help string }{
		{"rkms_keyring_store_reads_total", "Key records the keyring read from the store (either mode)."},
		{"rkms_keyring_local_unwraps_total", "Data keys unwrapped locally under a branch key (hierarchical mode): no KMS call."},
		{"rkms_keyring_local_wraps_total", "Data keys wrapped locally under a branch key (creations and re-wraps)."},
		{"rkms_keyring_wrapped_cache_hits_total", "Plaintext cache misses served a record from the wrapped-record cache (no store read)."},
		{"rkms_keyring_wrapped_cache_misses_total", "Wrapped-record cache misses (a store read follows)."},
		{"rkms_keyring_wrapped_cache_records", "Branch-wrapped records in the wrapped-record cache now."},
		{"rkms_keyring_rewrapped_total", "Key versions re-wrapped under a newer branch key version (lazily or by the background pass)."},
		{"rkms_keyring_rewrap_scanned_total", "Records examined by background re-wrap passes."},
		{"rkms_keyring_rewrap_passes_total", "Background re-wrap passes started."},
		{"rkms_keyring_rewrap_passes_done_total", "Background re-wrap passes that reached the end of the store."},
		{"rkms_keyring_rewrap_running", "1 while a background re-wrap pass is under way."},
		{"rkms_keyring_branch_retires_total", "Branch keys whose old versions this replica retired after kms.hierarchical.retire_grace."},
	} {
		c.d[m.name] = prometheus.NewDesc(m.name, m.help, nil, nil)
		c.keys = append(c.keys, m.name)
	}
	return c
}

func (c *hierCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, k := range c.keys {
		ch <- c.d[k]
	}
}

func (c *hierCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.k.Stats()
	running := 0.0
	if st.RewrapRunning {
		running = 1
	}
	for name, v := range map[string]float64{
		"rkms_keyring_store_reads_total":          float64(st.StoreReads),
		"rkms_keyring_local_unwraps_total":        float64(st.LocalUnwraps),
		"rkms_keyring_local_wraps_total":          float64(st.LocalWraps),
		"rkms_keyring_wrapped_cache_hits_total":   float64(st.WrappedHits),
		"rkms_keyring_wrapped_cache_misses_total": float64(st.WrappedMisses),
		"rkms_keyring_wrapped_cache_records":      float64(st.WrappedEntries),
		"rkms_keyring_rewrapped_total":            float64(st.Rewrapped),
		"rkms_keyring_rewrap_scanned_total":       float64(st.RewrapScanned),
		"rkms_keyring_rewrap_passes_total":        float64(st.RewrapPasses),
		"rkms_keyring_rewrap_passes_done_total":   float64(st.RewrapPassesDone),
		"rkms_keyring_rewrap_running":             running,
		"rkms_keyring_branch_retires_total":       float64(st.BranchRetires),
	} {
		kind := prometheus.CounterValue
		if name == "rkms_keyring_wrapped_cache_records" || name == "rkms_keyring_rewrap_running" {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.d[name], kind, v)
	}
}
