package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// report renders the per-phase figures as a Markdown table: requests started in each phase,
// how many succeeded, the failures by status, and the time from the end of the fault until the
// last failure it caused (0 when nothing failed after the fault ended).
func report(phases []*phase, results []result) string {
	var b strings.Builder
	b.WriteString("| phase | fault held | requests | succeeded | failed (by status) | failed: new tenants / existing / reads | recovered after heal |\n")
	b.WriteString("|---|---|---:|---:|---|---|---|\n")
	var total, totalOK int
	for _, p := range phases {
		var n, ok int
		byStatus := map[string]int{}
		byKind := map[string]int{}
		var lastFail time.Time
		for _, r := range results {
			if r.start.Before(p.start) || !r.start.Before(p.end) {
				continue
			}
			n++
			if r.ok {
				ok++
				continue
			}
			st := fmt.Sprint(r.status)
			if r.status == 0 {
				st = "transport error"
			}
			byStatus[st]++
			byKind[r.kind]++
			if r.end.After(lastFail) {
				lastFail = r.end
			}
		}
		total += n
		totalOK += ok
		var fails []string
		for _, st := range slices.Sorted(maps.Keys(byStatus)) {
			fails = append(fails, fmt.Sprintf("%s: %d", st, byStatus[st]))
		}
		failed := "0"
		if len(fails) > 0 {
			failed = fmt.Sprintf("%d (%s)", n-ok, strings.Join(fails, ", "))
		}
		held, recovered := "-", "-"
		if p.fault != nil {
			held = p.healed.Sub(p.start).Round(100 * time.Millisecond).String()
			recovered = "0s (no failure after heal)"
			if lastFail.After(p.healed) {
				recovered = lastFail.Sub(p.healed).Round(10 * time.Millisecond).String()
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %d / %d / %d | %s |\n", p.name, held, n, ok, failed,
			byKind[opPostNew], byKind[opPostExisting], byKind[opGet], recovered)
	}
	fmt.Fprintf(&b, "| **total** | | %d | %d | %d | | |\n", total, totalOK, total-totalOK)
	// One sample body per failure status and source, to show what a client gets.
	samples := map[string]string{}
	for _, r := range results {
		if r.ok || r.status == 0 {
			continue
		}
		body := strings.TrimSpace(r.bodyHead)
		src := "envoy"
		if strings.HasPrefix(body, "{") {
			src = "rkms"
		}
		k := fmt.Sprintf("%d from %s", r.status, src)
		if _, ok := samples[k]; !ok {
			samples[k] = body
		}
	}
	if len(samples) > 0 {
		b.WriteString("\nfailure bodies seen:\n")
		for _, k := range slices.Sorted(maps.Keys(samples)) {
			fmt.Fprintf(&b, "- %s: `%.120s`\n", k, samples[k])
		}
	}
	return b.String()
}
