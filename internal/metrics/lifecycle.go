package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rkms/rkms/keyring"
)

// lifecycleCollector turns the keyring's version lifecycle counters into series at each scrape.
type lifecycleCollector struct {
	k KeyringStats

	rotations, retired, destroyed, refused, reservations *prometheus.Desc
}

var _ prometheus.Collector = (*lifecycleCollector)(nil)

func newLifecycleCollector(k KeyringStats) *lifecycleCollector {
	return &lifecycleCollector{k: k,
		rotations: prometheus.NewDesc("rkms_keyring_rotations_total",
			"Key rotations by this replica, by reason: age (keyring.rotation.max_age), seals (keyring.rotation.max_seals), admin (explicit).", []string{"reason"}, nil),
		retired:   prometheus.NewDesc("rkms_keyring_versions_retired_total", "Key versions retired by this replica (a min decrypt version set above them).", nil, nil),
		destroyed: prometheus.NewDesc("rkms_keyring_versions_destroyed_total", "Retired key versions whose wrapped copies this replica deleted (keyring.rotation.retire_grace).", nil, nil),
		refused: prometheus.NewDesc("rkms_decrypt_refused_total",
			"Key version opens refused on purpose, by reason: version_retired (below the min decrypt version, or destroyed).", []string{"reason"}, nil),
		reservations: prometheus.NewDesc("rkms_keyring_seal_reservations_total", "Blocks of seals this replica reserved in the store (keyring.rotation.max_seals).", nil, nil),
	}
}

func (c *lifecycleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rotations, c.retired, c.destroyed, c.refused, c.reservations} {
		ch <- d
	}
}

func (c *lifecycleCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.k.Stats()
	for reason, n := range map[string]uint64{keyring.ReasonAge: st.RotationsAge, keyring.ReasonSeals: st.RotationsSeals, keyring.ReasonAdmin: st.RotationsAdmin} {
		ch <- prometheus.MustNewConstMetric(c.rotations, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.retired, prometheus.CounterValue, float64(st.VersionsRetired))
	ch <- prometheus.MustNewConstMetric(c.destroyed, prometheus.CounterValue, float64(st.VersionsDestroyed))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.RetiredRefused), "version_retired")
	ch <- prometheus.MustNewConstMetric(c.reservations, prometheus.CounterValue, float64(st.SealReservations))
}
