package extproc

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/envoytest"
	"github.com/rkms/rkms/internal/testenv"
)

// BenchmarkEnvoy measures requests through the real Envoy (one worker thread) on loopback, with
// and without the ext_proc filter, in one run:
//
//	direct-app            the recorder app without Envoy
//	envoy-no-extproc      GET on the route where ext_proc is disabled
//	extproc-no-policy     GET on a route without policy: one ext_proc message (mode_override)
//	extproc-decrypt-get   GET /patients/1: 3 messages, 4 fields decrypted
//	extproc-encrypt-post  POST /patients: 4 messages, 4 fields encrypted and decrypted back
//
// It reports req/s and p50/p99 latency with 8 concurrent clients. Run it bounded, e.g.
//
//	go test -run XXX -bench BenchmarkEnvoy -benchtime 3000x ./extproc
//
// and compare runs with benchstat (-count 6).
func BenchmarkEnvoy(b *testing.B) {
	testenv.Integration(b)
	s := startStack(b, "ingress.yaml", Options{})
	tenant := envoytest.Bearer(b, "t1") // the token ingress.yaml verifies; rkms reads its tenant claim
	s.do(b, "POST", "/patients", patient, tenant...)
	s.do(b, "POST", "/notes", patient)
	for _, bc := range []struct {
		name, method, url, body string
		headers                 []string
	}{
		{"direct-app", "GET", s.appURL + "/notes/2", "", nil},
		{"envoy-no-extproc", "GET", s.base + "/healthz", "", nil},
		{"extproc-no-policy", "GET", s.base + "/notes/2", "", nil},
		{"extproc-decrypt-get", "GET", s.base + "/patients/1", "", tenant},
		{"extproc-encrypt-post", "POST", s.base + "/patients", patient, tenant},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			b.SetParallelism(4) // 4 x GOMAXPROCS (2 here) = 8 clients
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t0 := time.Now()
					if err := hit(s.client, bc.method, bc.url, bc.body, bc.headers); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
			elapsed := time.Since(start)
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

func hit(c *http.Client, method, url, body string, headers []string) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}
