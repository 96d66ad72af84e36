package extproc

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// WithoutExtProc removes the ext_proc filter (and the stamp check that needs it) from a rendered
// Envoy bootstrap: rkms-load's no-filter configuration, internal/testing/load.WithoutExtProc, set by
// hooks_test.go (package extproc cannot import internal/testing/load, which imports it).
var WithoutExtProc func(cfg []byte) ([]byte, error)

// BenchmarkEnvoy measures requests through the real Envoy (one worker thread) on loopback, with
// and without the ext_proc filter, in one run. The first three send the very same request, POST
// /patients with the patient body (4 tagged fields), so that they compare:
//
//	direct-app            the recorder app without Envoy
//	envoy-no-extproc      envoy/ingress.yaml without its ext_proc filter (rkms-load's baseline)
//	extproc-encrypt-post  envoy/ingress.yaml with rkms: 4 messages, 4 fields sealed and opened back
//
// and two more requests, for context:
//
//	extproc-no-policy     GET on a route without policy: one ext_proc message (mode_override)
//	extproc-decrypt-get   GET /patients/1: 3 messages, 4 fields opened
//
// Each runs closed loop at its maximum with 8 concurrent clients and reports req/s and p50/p99
// latency. Run it bounded, e.g.
//
//	go test -run XXX -bench BenchmarkEnvoy -benchtime 3000x ./extproc
//
// and compare runs with benchstat (-count 6).
func BenchmarkEnvoy(b *testing.B) {
	testenv.Integration(b)
	s := startStack(b, "ingress.yaml", Options{})
	noFilter := startEnvoyWithoutExtProc(b, s)
	tenant := envoytest.Bearer(b, "t1") // the token ingress.yaml verifies; rkms reads its tenant claim
	s.do(b, "POST", "/patients", patient, tenant...)
	s.do(b, "POST", "/notes", patient)
	for _, bc := range []struct {
		name, method, url, body string
		headers                 []string
	}{
		{"direct-app", "POST", s.appURL + "/patients", patient, tenant},
		{"envoy-no-extproc", "POST", noFilter + "/patients", patient, tenant},
		{"extproc-encrypt-post", "POST", s.base + "/patients", patient, tenant},
		{"extproc-no-policy", "GET", s.base + "/notes/2", "", nil},
		{"extproc-decrypt-get", "GET", s.base + "/patients/1", "", tenant},
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

// startEnvoyWithoutExtProc runs a second Envoy on envoy/ingress.yaml without the ext_proc filter,
// in front of the stack's app, and returns its base URL.
func startEnvoyWithoutExtProc(b *testing.B, s *stack) string {
	b.Helper()
	if WithoutExtProc == nil {
		b.Fatal("WithoutExtProc is not set (hooks_test.go sets it)")
	}
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		b.Fatal(err)
	}
	appPort, err := strconv.Atoi(s.appURL[strings.LastIndex(s.appURL, ":")+1:])
	if err != nil {
		b.Fatal(err)
	}
	listener := testenv.FreePort(b)
	rendered, err := envoy.Render(cfg, map[string]int{"admin": testenv.FreePort(b), "listener": listener, "app": appPort})
	if err != nil {
		b.Fatal(err)
	}
	stripped, err := WithoutExtProc(rendered)
	if err != nil {
		b.Fatal(err)
	}
	testenv.StartEnvoy(b, string(stripped))
	return fmt.Sprintf("http://127.0.0.1:%d", listener)
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
