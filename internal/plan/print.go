package plan

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Write prints r as `rkms plan` does.
func Write(w io.Writer, r Result) error {
	p := r.Params
	var b strings.Builder
	fmt.Fprintf(&b, "rkms plan: %s mode, %s tenants, %s replicas, cache.ttl %s, cache.max_keys %s\n",
		p.Mode, count(float64(p.Tenants)), count(float64(p.Replicas)), p.TTL, maxKeys(p.MaxKeys))
	if p.Mode == Hierarchical {
		fmt.Fprintf(&b, "  kms.hierarchical.branch_keys %d, cache.wrapped_ttl %s, cache.wrapped_max_keys %s\n",
			p.BranchKeys, p.WrappedTTL, maxKeys(p.WrappedMaxKeys))
	}
	if p.Rate == 0 {
		b.WriteString("  traffic: worst case, every tenant reaches every replica at least once per cache.ttl\n")
	} else {
		fmt.Fprintf(&b, "  traffic: %s requests/s, tenants %s, spread uniformly over the replicas\n", rate(p.Rate), p.Dist)
	}
	fmt.Fprintf(&b, "  KMS: %d regions, quota %s requests/s per region (assumed: --kms-quota)\n\n", p.Regions, count(p.KMSQuota))

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, cells ...string) {
		fmt.Fprintf(tw, "%-40s\t%s\t\n", label, strings.Join(cells, "\t"))
	}
	row("", "per replica", "fleet")
	row("KMS Decrypt/s", rate(r.KMSPerReplica), rate(r.KMS()))
	row("DynamoDB reads/s", rate(r.StorePerReplica), rate(r.Store()))
	row("KMS requests/month", si(r.KMSPerReplica*SecondsPerMonth), si(r.KMSMonthly()))
	row("DynamoDB reads/month", si(r.StorePerReplica*SecondsPerMonth), si(r.StoreMonthly()))
	row(fmt.Sprintf("KMS cost/month at $%.2f per 10,000", KMSPricePer10k), "", usd(r.KMSCostMonthly()))
	row("")
	row("KMS Decrypt per region", "requests/s", "quota used", "headroom/s")
	row(fmt.Sprintf("replicas spread over %d regions", p.Regions), rate(r.KMSPerRegion()), pct(r.KMSPerRegion()/p.KMSQuota), headroom(p.KMSQuota-r.KMSPerRegion()))
	row("one region (fallback, or all prefer it)", rate(r.KMS()), pct(r.KMS()/p.KMSQuota), headroom(p.KMSQuota-r.KMS()))
	tw.Flush()

	fmt.Fprintf(&b, "\nkeys cached per replica (expected): %s plaintext", count(math.Round(r.CachedPerReplica)))
	if p.Mode == Hierarchical {
		fmt.Fprintf(&b, ", %s wrapped", count(math.Round(r.WrappedPerReplica)))
	}
	b.WriteString("\n")
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// WriteTable prints one Markdown row per result: the README's "Choosing a KMS mode" table.
func WriteTable(w io.Writer, rs []Result) error {
	var b strings.Builder
	b.WriteString("| mode | tenants active | replicas | KMS Decrypt/s (steady) | KMS requests per month | at $0.03 per 10,000 | DynamoDB reads/s | one region's KMS quota (assumed) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		p := r.Params
		atLeast, storeAtLeast := "", "" // the worst case beyond cache.max_keys: the LRU makes it higher
		if r.LRUBound && p.Rate == 0 {
			storeAtLeast = "≥ "
			if p.Mode == Direct { // hierarchical: evictions cost store reads, not KMS calls
				atLeast = "≥ "
			}
		}
		quota := pct(r.KMS()/p.KMSQuota) + " of " + count(p.KMSQuota) + "/s"
		if r.KMS() > p.KMSQuota {
			quota = "**over** " + count(p.KMSQuota) + "/s (" + fmt.Sprintf("%.0f x", r.KMS()/p.KMSQuota) + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p.Mode, count(float64(p.Tenants)), count(float64(p.Replicas)),
			atLeast+rate(r.KMS()), atLeast+si(r.KMSMonthly()), atLeast+usd(r.KMSCostMonthly()), storeAtLeast+rate(r.Store()), quota)
	}
	for _, r := range rs {
		if r.LRUBound && r.Params.Rate == 0 {
			fmt.Fprintf(&b, "\n≥: %s tenants exceed cache.max_keys %s, so each replica evicts keys before cache.ttl and makes more calls than one per tenant and TTL.\n",
				count(float64(r.Params.Tenants)), maxKeys(r.Params.MaxKeys))
			break
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count prints n with thousands separators (n rounded to an integer).
func count(n float64) string {
	s := fmt.Sprintf("%.0f", math.Abs(n))
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if n < 0 && s != "0" {
		return "-" + string(out)
	}
	return string(out)
}

// rate prints a rate: three decimals below 1, one below 100, an integer with separators above.
func rate(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.3f", v)
	}
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return count(v)
}

// si prints a large count with 3 significant digits and a k, M or G suffix.
func si(v float64) string {
	for _, u := range []struct {
		div float64
		sfx string
	}{{1e12, " T"}, {1e9, " G"}, {1e6, " M"}, {1e3, " k"}} {
		if v >= u.div {
			return sig3(v/u.div) + u.sfx
		}
	}
	return sig3(v)
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// usd prints dollars: cents below $100, whole dollars with separators above.
func usd(v float64) string {
	if v < 100 {
		return fmt.Sprintf("$%.2f", v)
	}
	return "$" + count(v)
}

func pct(f float64) string {
	if f < 0.1 {
		return fmt.Sprintf("%.2f %%", 100*f)
	}
	return fmt.Sprintf("%.0f %%", 100*f)
}

func headroom(v float64) string {
	if v < 0 {
		return "OVER by " + rate(-v)
	}
	return rate(v)
}

func maxKeys(m int) string {
	if m < 0 {
		return "unbounded"
	}
	return count(float64(m))
}
