package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	loadrig "github.com/rkms/rkms/internal/testing/load"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
)

// The attackers' loopback addresses: not the good client's 127.0.0.1, so that rkms's per-client
// limits (and the admin API's per-address throttle) can tell them apart.
const (
	attackerAddr  = "127.0.0.2"
	attacker2Addr = "127.0.0.3"
)

// dialFrom returns a dialer whose connections come from the local address ip.
func dialFrom(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
}

// extprocFrom returns n clients of rkms's ext_proc port, each on its own HTTP/2 connection
// from ip.
func extprocFrom(t *testing.T, r *replica, ip string, n int) []extprocv3.ExternalProcessorClient {
	t.Helper()
	var out []extprocv3.ExternalProcessorClient
	for range n {
		cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", r.extproc),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return dialFrom(ip).DialContext(ctx, "tcp", addr)
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		out = append(out, extprocv3.NewExternalProcessorClient(cc))
	}
	return out
}

// 1. Slow bodies through Envoy: each POST sends its headers and a little of its body, then one
// byte a second. Before issue 13 each held an rkms stream for as long as it lasted.
func attackSlowBodies(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	n := volume(1100, 1100) // cheap: goroutines and sockets
	o := &outcome{attack: "slow bodies through Envoy", refused: &tally{},
		rate: fmt.Sprintf("%d POST /patients, 1 KiB bodies at 1 byte/s, for %v", n, hold())}
	tok := envoytest.Token(t, "mallory")
	addr := strings.TrimPrefix(s.url, "http://")
	underAttack(t, s, patientsClient(s.url, "good"), o, func(ctx context.Context) {
		var wg sync.WaitGroup
		var held atomic.Int64
		for i := range n {
			wg.Go(func() {
				// Opened over the first second: an attacker's pace, not a burst of this process's CPU.
				time.Sleep(time.Duration(i) * time.Second / time.Duration(n))
				c, err := dialFrom(attackerAddr).DialContext(ctx, "tcp", addr)
				if err != nil {
					o.refused.add("connect refused")
					return
				}
				defer c.Close()
				fmt.Fprintf(c, "POST /patients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
					"Authorization: Bearer %s\r\nContent-Length: 1024\r\n\r\n{\"ssn\":\"", tok)
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for sent := 0; sent < 1000; sent++ {
					select {
					case <-ctx.Done():
						// Still held (no answer yet) or answered: read what Envoy said.
						_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
						if st := readStatus(c); st != 0 {
							o.refused.addStatus(st)
						} else {
							held.Add(1)
						}
						return
					case <-tick.C:
						if _, err := c.Write([]byte("1")); err != nil {
							_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
							o.refused.addStatus(readStatus(c))
							return
						}
					}
				}
			})
		}
		wg.Wait()
		o.notes = fmt.Sprintf("%d bodies still unanswered at the end", held.Load())
	})
}

// readStatus reads an HTTP/1.1 status line from c (0 if none).
func readStatus(c net.Conn) int {
	line, err := bufio.NewReader(c).ReadString('\n')
	var st int
	if err == nil {
		fmt.Sscanf(line, "HTTP/1.1 %d", &st)
	}
	return st
}

// 2. Idle streams straight to the ext_proc port: gRPC streams that never send a message, from
// another address, over several connections. Before issue 13 they held every stream slot.
func attackIdleStreams(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	n := volume(2000, 2000)
	const conns = 4
	o := &outcome{attack: "idle streams to ext_proc", refused: &tally{},
		rate: fmt.Sprintf("%d gRPC streams that never send, on %d connections from %s, for %v", n, conns, attackerAddr, hold())}
	clients := extprocFrom(t, s.rep, attackerAddr, conns)
	underAttack(t, s, patientsClient(s.url, "good"), o, func(ctx context.Context) {
		var wg sync.WaitGroup
		var open atomic.Int64
		for i := range n {
			wg.Go(func() {
				st, err := clients[i%conns].Process(loadrig.PolicyContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						o.refused.add("open: " + status.Code(err).String())
					}
					return
				}
				open.Add(1)
				_, err = st.Recv() // blocks until rkms ends the stream, or ctx does
				if ctx.Err() == nil {
					o.refused.add(status.Code(err).String())
				}
			})
		}
		wg.Wait()
		o.notes = fmt.Sprintf("%d streams started by the attacker", open.Load())
	})
}

// grpcOutcome names what ended one direct exchange: "ok", an ImmediateResponse status, or the gRPC
// code.
var immediateRE = regexp.MustCompile(`immediate response (\d+)`)

func grpcOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	if m := immediateRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
	}
	return status.Code(err).String()
}

// 3a. Memory flood straight to ext_proc: streams that each announce a 1 MiB body and send it,
// over and over, all at once. Before issue 13 rkms took every one of them into memory.
func attackMemoryDirect(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	workers := volume(150, 300)
	body, err := loadrig.Body(1<<20 - 1024)
	if err != nil {
		t.Fatal(err)
	}
	x := loadrig.NewExchange(body, 1, false)
	o := &outcome{attack: "memory flood to ext_proc", refused: &tally{},
		rate: fmt.Sprintf("%d concurrent streams of 1 MiB bodies from %s, for %v", workers, attacker2Addr, hold())}
	clients := extprocFrom(t, s.rep, attacker2Addr, 4)
	underAttack(t, s, patientsClient(s.url, "good"), o, func(ctx context.Context) {
		var wg sync.WaitGroup
		var ok atomic.Int64
		for i := range workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					err := x.Run(loadrig.PolicyContext(ctx), clients[i%len(clients)], 0)
					if ctx.Err() != nil {
						return
					}
					if err == nil {
						ok.Add(1)
						continue
					}
					o.refused.add(grpcOutcome(err))
				}
			})
		}
		wg.Wait()
		o.notes = fmt.Sprintf("%d bodies processed", ok.Load())
	})
	checkMemory(t, o)
}

// checkMemory: rkms stayed within its budget plus the documented overhead.
func checkMemory(t *testing.T, o *outcome) {
	t.Helper()
	if o.rss > memoryBudget+rssOverhead {
		t.Errorf("rkms peak RSS %d MiB > budget %d MiB + overhead %d MiB", o.rss>>20, memoryBudget>>20, rssOverhead>>20)
	}
}

// 3b. Memory flood through Envoy: concurrent 700 KB POSTs on a tagged route, over and over.
// Before issue 13 rkms's memory rose above the Helm chart's 256 Mi limit.
func attackMemoryEnvoy(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	workers := volume(200, 400)
	body := []byte(`{"ssn":"123-45-6789","contact":{"email":"m@example.com"},"pad":"` + strings.Repeat("x", 700<<10) + `"}`)
	tok := envoytest.Token(t, "mallory")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers,
		DialContext: dialFrom(attackerAddr).DialContext}}
	o := &outcome{attack: "memory flood through Envoy", refused: &tally{},
		rate: fmt.Sprintf("%d concurrent POSTs of 700 KB from %s, for %v", workers, attackerAddr, hold())}
	underAttack(t, s, patientsClient(s.url, "good"), o, func(ctx context.Context) {
		var wg sync.WaitGroup
		var ok atomic.Int64
		for range workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					if attackPost(ctx, client, s.url, tok, body, o.refused) {
						ok.Add(1)
					}
				}
			})
		}
		wg.Wait()
		o.notes = fmt.Sprintf("%d bodies processed", ok.Load())
	})
	checkMemory(t, o)
}

// attackPost sends one attacker's POST /patients through Envoy (answered by the app with its own
// body, nothing stored), and counts anything but 201 in refused. It reports a 201.
func attackPost(ctx context.Context, client *http.Client, url, tok string, body []byte, refused *tally) bool {
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, url+"/patients", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Echo", "1")
	resp, err := client.Do(req)
	if err != nil {
		refused.addStatus(0)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		refused.addStatus(resp.StatusCode)
		return false
	}
	return true
}

// 4. Tenant flood: requests through Envoy for brand-new tenants, as fast as they go, each of which
// makes rkms create a key in every region. With kms.create_rate and create_burst, rkms creates
// at most burst + rate x duration keys.
func attackTenants(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	n := volume(200, 1000)
	o := &outcome{attack: "tenant flood", refused: &tally{}}
	var tried []string
	var mu sync.Mutex
	var took time.Duration
	underAttack(t, s, patientsClient(s.url, "good"), o, func(ctx context.Context) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DialContext: dialFrom(attackerAddr).DialContext}}
		next := atomic.Int64{}
		began := time.Now()
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					tenant := fmt.Sprintf("flood-%d-%s", i, token("")[:6])
					mu.Lock()
					tried = append(tried, tenant)
					mu.Unlock()
					tok, _ := envoytest.TenantToken(tenant)
					attackPost(ctx, client, s.url, tok, []byte(`{"ssn":"1","contact":{"email":"f@example.com"}}`), o.refused)
				}
			})
		}
		wg.Wait()
		took = time.Since(began)
	})
	created := countRecords(t, s.b, tried)
	limit := createBurst + int(float64(createRate)*took.Seconds()+0.999)
	o.rate = fmt.Sprintf("%d new tenants in %v (%.0f/s)", len(tried), took.Round(10*time.Millisecond), float64(len(tried))/took.Seconds())
	o.notes = fmt.Sprintf("%d keys created (limit burst %d + rate %d/s x %v = %d)", created, createBurst, createRate, took.Round(100*time.Millisecond), limit)
	t.Log(o.notes)
	if created > limit {
		t.Errorf("%d keys created for %d new tenants in %v: more than burst + rate x duration = %d", created, len(tried), took, limit)
	}
}

// countRecords counts the key records in the store among tenants' key ids.
func countRecords(t *testing.T, b *backend, tenants []string) int {
	t.Helper()
	st, err := dynamodb.New(context.Background(), dynamodb.Config{Table: "rkms_keys", Region: "us-east-1",
		Endpoints: []string{b.db.Endpoint}}, testenv.AWSConfig(t, "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	for _, tn := range tenants {
		_, err := st.Get(context.Background(), "tenant-"+tn)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("store get %s: %v", tn, err)
		}
	}
	return n
}

// 5. Admin login flood: requests with bad tokens from one address, as fast as they go, while a
// legitimate admin from another address reads a key at goodRate.
func attackLogins(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	if _, _, st, err := s.rep.key(context.Background(), "tenant-good"); st != http.StatusOK {
		t.Fatalf("create tenant-good: %d %v", st, err)
	}
	o := &outcome{attack: "admin login flood", refused: &tally{}}
	admin := &goodClient{name: "admin", do: func(ctx context.Context) error {
		_, _, st, err := s.rep.key(ctx, "tenant-good")
		if err != nil {
			return err
		}
		if st != http.StatusOK {
			return statusError{status: st}
		}
		return nil
	}}
	var sent atomic.Int64
	underAttack(t, s, admin, o, func(ctx context.Context) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DialContext: dialFrom(attackerAddr).DialContext}}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, "http://"+s.rep.admin+"/key?id=tenant-good", nil)
					req.Header.Set("Authorization", fmt.Sprintf("Bearer guess-%d-%d", w, i))
					resp, err := client.Do(req)
					sent.Add(1)
					if err != nil {
						o.refused.addStatus(0)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					o.refused.addStatus(resp.StatusCode)
				}
			})
		}
		wg.Wait()
	})
	o.rate = fmt.Sprintf("%d bad tokens from %s in %v (8 clients, closed loop)", sent.Load(), attackerAddr, hold())
}
