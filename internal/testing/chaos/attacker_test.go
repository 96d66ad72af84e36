package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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

	"github.com/rkms/rkms/internal/testing/envoytest"
	loadrig "github.com/rkms/rkms/internal/testing/load"
)

// The attack generators run in a child process: the test binary re-executed with attackEnv set
// to an attackSpec (TestMain), so that the attacker's goroutines, garbage and scheduler never
// share a runtime with the good client whose latency the test asserts (as cmd/rkms-load runs
// each server in its own process, internal/testing/load/child.go). The child writes one JSON
// attackResult line on stdout when the attack is over and exits.
const attackEnv = "RKMS_ABUSE_ATTACK"

// The attacks a child can run (attackSpec.Kind).
const (
	kindSlow      = "slow-bodies"   // N connections, each a POST whose body comes at 1 byte/s
	kindIdle      = "idle-streams"  // N gRPC streams that never send, opened over 1 s on 4 connections; reopened 1 s after rkms ends one
	kindMemDirect = "memory-direct" // waves of N concurrent ext_proc streams of 1 MiB bodies, one wave every Period
	kindMemEnvoy  = "memory-envoy"  // waves of N concurrent POSTs of 700 KB through Envoy, one wave every Period
	kindTenants   = "tenant-flood"  // N new tenants through Envoy at Rate per second, open loop
	kindLogins    = "login-flood"   // bad admin tokens at Rate per second, open loop
)

// attackSpec is one attack, as the parent hands it to the child (JSON in attackEnv).
type attackSpec struct {
	Kind   string        `json:"kind"`
	Hold   time.Duration `json:"hold"`   // how long the attack lasts
	Target string        `json:"target"` // Envoy's URL, rkms's ext_proc host:port, or its admin host:port
	Path   string        `json:"path"`   // the path through Envoy: /patients, or the baseline route's
	N      int           `json:"n"`      // connections, streams or bodies at once; tenants in all
	Period time.Duration `json:"period"` // between the starts of two waves
	Spread time.Duration `json:"spread"` // how long each body of a wave takes to send (memory flood through Envoy)
	Rate   int           `json:"rate"`   // requests per second
	Token  string        `json:"token"`  // the attacker's bearer token
	Prefix string        `json:"prefix"` // tenant names are Prefix + 1..N
}

// attackResult is what the child reports.
type attackResult struct {
	Refused     map[string]int `json:"refused"`       // outcome (HTTP status, gRPC code, "no reply") -> count
	OK          int64          `json:"ok"`            // bodies processed, streams opened
	Sent        int64          `json:"sent"`          // requests or streams started
	Waves       int            `json:"waves"`         // waves started (memory floods)
	MaxInFlight int64          `json:"max_in_flight"` // the most requests or streams in flight at once
	Held        int64          `json:"held"`          // slow bodies still unanswered at the end
	Took        time.Duration  `json:"took"`          // from the first request to the last answer
	Err         string         `json:"err,omitempty"` // the attack could not run
}

// attacker is the child's state while it attacks: a tally and counters safe for concurrent use.
type attacker struct {
	spec     attackSpec
	refused  tally
	ok, sent atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	held     atomic.Int64
	waves    int
}

// begin counts a request or stream in flight; the returned func ends it.
func (a *attacker) begin() func() {
	a.sent.Add(1)
	n := a.inFlight.Add(1)
	for m := a.maxIn.Load(); n > m && !a.maxIn.CompareAndSwap(m, n); m = a.maxIn.Load() {
	}
	return func() { a.inFlight.Add(-1) }
}

// attackerMain runs the attack described by spec (the JSON of attackEnv) and prints its result.
func attackerMain(spec string) int {
	var a attacker
	res := attackResult{}
	if err := json.Unmarshal([]byte(spec), &a.spec); err != nil {
		res.Err = err.Error()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), a.spec.Hold)
		began := time.Now()
		if err := a.run(ctx); err != nil {
			res.Err = err.Error()
		}
		cancel()
		res.Took = time.Since(began)
	}
	res.Refused, res.OK, res.Sent, res.Waves = a.refused.n, a.ok.Load(), a.sent.Load(), a.waves
	res.MaxInFlight, res.Held = a.maxIn.Load(), a.held.Load()
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return 0
}

func (a *attacker) run(ctx context.Context) error {
	switch a.spec.Kind {
	case kindSlow:
		a.slowBodies(ctx)
	case kindIdle:
		a.idleStreams(ctx)
	case kindMemDirect:
		return a.memoryDirect(ctx)
	case kindMemEnvoy:
		a.memoryEnvoy(ctx)
	case kindTenants:
		a.tenants(ctx)
	case kindLogins:
		a.logins(ctx)
	default:
		return fmt.Errorf("unknown attack %q", a.spec.Kind)
	}
	return nil
}

// runAttacker re-executes this test binary as the attacker child for spec, waits for it to end
// (its attack lasts spec.Hold) and returns its result and the CPU time it used.
func runAttacker(t *testing.T, spec attackSpec) (attackResult, time.Duration) {
	t.Helper()
	js, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), attackEnv+"="+string(js))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("attacker %s: %v\n%s", spec.Kind, err, errOut.String())
	}
	var res attackResult
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &res); err != nil {
		t.Fatalf("attacker %s: %v in %q\n%s", spec.Kind, err, out.String(), errOut.String())
	}
	if res.Err != "" {
		t.Fatalf("attacker %s: %s", spec.Kind, res.Err)
	}
	return res, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

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

// extprocFrom returns n clients of the ext_proc server at addr, each on its own HTTP/2
// connection from ip, and a func that closes them.
func extprocFrom(addr, ip string, n int) ([]extprocv3.ExternalProcessorClient, func(), error) {
	var out []extprocv3.ExternalProcessorClient
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, cc := range conns {
			cc.Close()
		}
	}
	for range n {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return dialFrom(ip).DialContext(ctx, "tcp", addr)
			}))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, cc)
		out = append(out, extprocv3.NewExternalProcessorClient(cc))
	}
	return out, closeAll, nil
}

// waves starts n calls of fn at once every period until ctx ends, each wave once the previous
// one is over (a late wave starts at once, never two at a time), and returns the waves started.
func waves(ctx context.Context, period time.Duration, n int, fn func(i int)) int {
	count := 0
	for next := time.Now(); ctx.Err() == nil; count++ {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { fn(i) })
		}
		wg.Wait()
		next = next.Add(period)
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(next)):
		}
	}
	return count
}

// paced calls fn(i) for i = 1..n (n <= 0: no limit) at rate calls per second, each in its own
// goroutine (open loop: a slow answer does not delay the next call), until ctx ends; it returns
// once every call has returned.
func paced(ctx context.Context, rate, n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := time.Now()
	for i := 1; n <= 0 || i <= n; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-time.After(time.Until(start.Add(time.Duration(i-1) * time.Second / time.Duration(rate)))):
		}
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

// slowBodies: N POSTs through Envoy, opened over the first second, each sending its headers and
// the start of a 1 KiB body, then one byte a second.
func (a *attacker) slowBodies(ctx context.Context) {
	addr := strings.TrimPrefix(a.spec.Target, "http://")
	var wg sync.WaitGroup
	for i := range a.spec.N {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * time.Second / time.Duration(a.spec.N))
			defer a.begin()()
			c, err := dialFrom(attackerAddr).DialContext(ctx, "tcp", addr)
			if err != nil {
				a.refused.add("connect refused")
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
				"Authorization: Bearer %s\r\nContent-Length: 1024\r\n\r\n{\"ssn\":\"", a.spec.Path, a.spec.Token)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for sent := 0; sent < 1000; sent++ {
				select {
				case <-ctx.Done():
					// Still held (no answer yet) or answered: read what Envoy said.
					_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					if st := readStatus(c); st != 0 {
						a.refused.addStatus(st)
					} else {
						a.held.Add(1)
					}
					return
				case <-tick.C:
					if _, err := c.Write([]byte("1")); err != nil {
						_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
						a.refused.addStatus(readStatus(c))
						return
					}
				}
			}
		})
	}
	wg.Wait()
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

// idleStreams: N gRPC streams that never send a message, on 4 connections from attackerAddr;
// each one rkms ends is counted and opened again a second later.
func (a *attacker) idleStreams(ctx context.Context) {
	clients, closeAll, err := extprocFrom(a.spec.Target, attackerAddr, 4)
	if err != nil {
		a.refused.add("dial: " + err.Error())
		return
	}
	defer closeAll()
	var wg sync.WaitGroup
	for i := range a.spec.N {
		wg.Go(func() {
			// Opened over the first second, as the slow bodies: 2,000 streams a second, each
			// reopened a second after rkms ends it.
			time.Sleep(time.Duration(i) * time.Second / time.Duration(a.spec.N))
			for ctx.Err() == nil {
				a.idleStream(ctx, clients[i%len(clients)])
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	wg.Wait()
}

func (a *attacker) idleStream(ctx context.Context, c extprocv3.ExternalProcessorClient) {
	defer a.begin()()
	st, err := c.Process(loadrig.PolicyContext(ctx))
	if err != nil {
		if ctx.Err() == nil {
			a.refused.add("open: " + status.Code(err).String())
		}
		return
	}
	a.ok.Add(1)
	_, err = st.Recv() // blocks until rkms ends the stream, or ctx does
	if ctx.Err() == nil {
		a.refused.add(status.Code(err).String())
	}
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

// memoryDirect: waves of N ext_proc streams at once from attacker2Addr on 4 connections, each
// announcing a 1 MiB body in its headers and sending it once they are accepted.
func (a *attacker) memoryDirect(ctx context.Context) error {
	body, err := loadrig.Body(1<<20 - 1024)
	if err != nil {
		return err
	}
	x := loadrig.NewExchange(body, 1, false)
	clients, closeAll, err := extprocFrom(a.spec.Target, attacker2Addr, 4)
	if err != nil {
		return err
	}
	defer closeAll()
	a.waves = waves(ctx, a.spec.Period, a.spec.N, func(i int) {
		defer a.begin()()
		err := x.Run(loadrig.PolicyContext(ctx), clients[i%len(clients)], 0)
		switch {
		case ctx.Err() != nil: // cut by the end of the attack
		case err == nil:
			a.ok.Add(1)
		default:
			a.refused.add(grpcOutcome(err))
		}
	})
	return nil
}

// memoryEnvoy: waves of N POSTs of 700 KB at once through Envoy from attackerAddr, each on its
// own connection, read by the app (X-Sink: nothing stored). Each body is sent over Spread in
// 28 KiB chunks, so that the N bodies are in flight at once and complete together, at a byte
// rate this machine can carry (N x 700 KB / Spread).
func (a *attacker) memoryEnvoy(ctx context.Context) {
	body := []byte(`{"ssn":"123-45-6789","contact":{"email":"m@example.com"},"pad":"` + strings.Repeat("x", 700<<10) + `"}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: a.spec.N,
		DialContext: dialFrom(attackerAddr).DialContext}}
	defer client.CloseIdleConnections()
	a.waves = waves(ctx, a.spec.Period, a.spec.N, func(int) {
		defer a.begin()()
		if a.post(ctx, client, a.spec.Token, &spreadReader{b: body, chunk: 28 << 10, spread: a.spec.Spread}) {
			a.ok.Add(1)
		}
	})
}

// post sends one attacker's POST to Target+Path (read by the app, answered with {}, nothing
// stored), and counts anything but 201 in refused. It reports a 201.
func (a *attacker) post(ctx context.Context, client *http.Client, tok string, body bodyReader) bool {
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, a.spec.Target+a.spec.Path, body)
	req.ContentLength = int64(body.Len())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Sink", "1")
	resp, err := client.Do(req)
	if err != nil {
		a.refused.addStatus(0)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		a.refused.addStatus(resp.StatusCode)
		return false
	}
	return true
}

// tenants: requests through Envoy for N brand-new tenants (Prefix + i), at Rate per second, each
// of which makes rkms create a key in every region unless its creation limit refuses.
func (a *attacker) tenants(ctx context.Context) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: dialFrom(attackerAddr).DialContext}}
	defer client.CloseIdleConnections()
	paced(ctx, a.spec.Rate, a.spec.N, func(i int) {
		defer a.begin()()
		tok, _ := envoytest.TenantToken(fmt.Sprintf("%s%d", a.spec.Prefix, i))
		if a.post(ctx, client, tok, bytes.NewReader([]byte(`{"ssn":"1","contact":{"email":"f@example.com"}}`))) {
			a.ok.Add(1)
		}
	})
}

// logins: GET /key on the admin API with a different bad token each time, at Rate per second.
func (a *attacker) logins(ctx context.Context) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: dialFrom(attackerAddr).DialContext}}
	defer client.CloseIdleConnections()
	paced(ctx, a.spec.Rate, 0, func(i int) {
		defer a.begin()()
		req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, "http://"+a.spec.Target+"/key?id=tenant-good", nil)
		req.Header.Set("Authorization", fmt.Sprintf("Bearer guess-%d", i))
		resp, err := client.Do(req)
		if err != nil {
			a.refused.addStatus(0)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		a.refused.addStatus(resp.StatusCode)
	})
}

// bodyReader is a request body whose length is known.
type bodyReader interface {
	io.Reader
	Len() int
}

// spreadReader reads b in chunks, paced so that the whole of b takes spread.
type spreadReader struct {
	b      []byte
	off    int
	chunk  int
	spread time.Duration
	start  time.Time
}

func (r *spreadReader) Len() int { return len(r.b) - r.off }

func (r *spreadReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	if r.start.IsZero() {
		r.start = time.Now()
	}
	// Chunk k may go once k/chunks of spread has passed.
	chunks := (len(r.b) + r.chunk - 1) / r.chunk
	k := r.off / r.chunk
	time.Sleep(time.Until(r.start.Add(r.spread * time.Duration(k) / time.Duration(chunks))))
	n := copy(p[:min(len(p), r.chunk-r.off%r.chunk)], r.b[r.off:])
	r.off += n
	return n, nil
}
