package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rkms/rkms/keyring"
)

// KeyringStats is what the collector reads from the keyring at scrape time.
type KeyringStats interface {
	RegionStatus() []keyring.RegionStatus
	Stats() keyring.Stats
}

var _ KeyringStats = (*keyring.Keyring)(nil)

// breakerStates are the values of rkms_kms_breaker_state's state label.
var breakerStates = []string{"closed", "open", "half-open"}

// keyringCollector turns RegionStatus and Stats into series at each scrape.
type keyringCollector struct {
	k KeyringStats

	breaker, healthy, opens                   *prometheus.Desc
	hits, misses, cached, created, pend, fixd *prometheus.Desc
	stale, dropped                            *prometheus.Desc
	creations, negHits, negKeys               *prometheus.Desc
}

var _ prometheus.Collector = (*keyringCollector)(nil)

// WatchKeyring registers a collector that reads k's breaker states, cache and repair counters
// at each scrape. Call it once per Metrics.
func (m *Metrics) WatchKeyring(k KeyringStats) error {
	if err := m.reg.Register(newLifecycleCollector(k)); err != nil {
		return err
	}
	if err := m.reg.Register(newHierCollector(k)); err != nil {
		return err
	}
	return m.reg.Register(&keyringCollector{k: k,
		breaker: prometheus.NewDesc("rkms_kms_breaker_state", "1 for the current circuit breaker state of each KMS region (closed, open, half-open), else 0.", []string{"region", "state"}, nil),
		healthy: prometheus.NewDesc("rkms_kms_region_healthy", "1 while the region's circuit breaker is closed.", []string{"region"}, nil),
		opens:   prometheus.NewDesc("rkms_kms_breaker_opens_total", "Times the region's circuit breaker opened.", []string{"region"}, nil),
		hits:    prometheus.NewDesc("rkms_keyring_cache_hits_total", "Key lookups served from the plaintext data-key cache.", nil, nil),
		misses:  prometheus.NewDesc("rkms_keyring_cache_misses_total", "Key lookups that missed the cache.", nil, nil),
		cached:  prometheus.NewDesc("rkms_keyring_cache_keys", "Key ids in the cache now.", nil, nil),
		created: prometheus.NewDesc("rkms_keyring_keys_created_total", "Key records this replica created (won the first write).", nil, nil),
		pend:    prometheus.NewDesc("rkms_keyring_repairs_pending", "Key ids known to lack some region's wrapped copy.", nil, nil),
		fixd:    prometheus.NewDesc("rkms_keyring_repaired_copies_total", "Wrapped copies added by repair.", nil, nil),
		stale:   prometheus.NewDesc("rkms_keyring_stale_served_total", "Keys served past their cache TTL because no region or the store answered (cache.max_stale).", nil, nil),
		dropped: prometheus.NewDesc("rkms_keyring_derived_dropped_total", "Cached keys that dropped their expanded cipher state to stay within cache.max_derived (rebuilt on next use).", nil, nil),
		creations: prometheus.NewDesc("rkms_keyring_creations_total",
			"Key creations by result: created (this replica won the first write) or limited (refused by kms.create_rate, no KMS call made).", []string{"result"}, nil),
		negHits: prometheus.NewDesc("rkms_keyring_negative_hits_total", "Lookups of an unknown key id answered from the negative cache, without a store read (cache.negative_ttl).", nil, nil),
		negKeys: prometheus.NewDesc("rkms_keyring_negative_keys", "Key ids remembered as having no key now (cache.negative_max_keys).", nil, nil),
	})
}

func (c *keyringCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.breaker, c.healthy, c.opens, c.hits, c.misses, c.cached, c.created, c.pend, c.fixd, c.stale, c.dropped,
		c.creations, c.negHits, c.negKeys} {
		ch <- d
	}
}

func (c *keyringCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.k.RegionStatus() {
		for _, s := range breakerStates {
			ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, boolValue(r.Breaker == s), r.Name, s)
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, boolValue(r.Healthy), r.Name)
	}
	st := c.k.Stats()
	for _, r := range st.Regions {
		ch <- prometheus.MustNewConstMetric(c.opens, prometheus.CounterValue, float64(r.BreakerOpens), r.Name)
	}
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.CacheHits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(st.CacheMisses))
	ch <- prometheus.MustNewConstMetric(c.cached, prometheus.GaugeValue, float64(st.CacheEntries))
	ch <- prometheus.MustNewConstMetric(c.created, prometheus.CounterValue, float64(st.Created))
	ch <- prometheus.MustNewConstMetric(c.pend, prometheus.GaugeValue, float64(st.PendingRepairs))
	ch <- prometheus.MustNewConstMetric(c.fixd, prometheus.CounterValue, float64(st.RepairedCopies))
	ch <- prometheus.MustNewConstMetric(c.stale, prometheus.CounterValue, float64(st.StaleServed))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.DerivedDropped))
	ch <- prometheus.MustNewConstMetric(c.creations, prometheus.CounterValue, float64(st.Created), "created")
	ch <- prometheus.MustNewConstMetric(c.creations, prometheus.CounterValue, float64(st.CreateLimited), "limited")
	ch <- prometheus.MustNewConstMetric(c.negHits, prometheus.CounterValue, float64(st.NegativeHits))
	ch <- prometheus.MustNewConstMetric(c.negKeys, prometheus.GaugeValue, float64(st.NegativeEntries))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
