package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"

	"github.com/rkms/rkms/extproc"
)

// RouteRun is one route kind measured through the three Envoy configurations.
type RouteRun struct {
	Kind string      // "encrypt-only POST /write", "decrypt-only GET /read/{id}"
	Max  []*Measured // each configuration at its maximum (closed loop)
	Rate float64     // half the 4-phase no-op's maximum
	Half []*Measured // each configuration at Rate (open loop)
}

// envoyConf is one running Envoy configuration and the process its server work is charged to.
type envoyConf struct {
	name  string
	env   *envoyProc
	stats *child // the ext_proc server; the app for the configuration without ext_proc
	rkms  bool   // the rkms configuration: responses are checked for rkms's work
}

// runEnvoy is run (2): the route kinds through the three Envoy configurations, then the
// unprotected route through the configuration without ext_proc and the rkms one.
func runEnvoy(ctx context.Context, exe string, f *Flags, body []byte, noop, rkms *child, rep *Report, logf func(string, ...any)) error {
	bin, err := EnvoyBinary(f.Envoy)
	if err != nil {
		return err
	}
	app, err := startChild(exe, RoleApp, f, io.Discard)
	if err != nil {
		return err
	}
	defer app.stop()
	if f.runs(SectionGet) {
		logf("sealing %d records through rkms and storing them in the app (the decrypt-only GET reads them)", f.Records)
		if err := prepareRecords(ctx, rkms.addr, "http://"+app.addr, body, f.Records); err != nil {
			return err
		}
		if err := fileTraces(f, "prepare"); err != nil {
			return err
		}
	}
	client := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: f.MaxWorkers * 2, MaxConnsPerHost: f.MaxWorkers * 2}}
	tokens, err := mintTokens(f.Keys, 24*time.Hour)
	if err != nil {
		return err
	}
	var confs []envoyConf
	for _, c := range []struct {
		name  string
		child *child
	}{{EnvoyNoFilter, nil}, {EnvoyNoop, noop}, {EnvoyRKMS, rkms}} {
		ext, stats := 0, app
		if c.child != nil {
			ext, stats = port(c.child.addr), c.child
		}
		e, err := startEnvoy(ctx, bin, port(app.addr), ext, c.child == rkms, io.Discard)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		defer e.stop()
		confs = append(confs, envoyConf{name: c.name, env: e, stats: stats, rkms: c.child == rkms})
	}
	kinds := []struct {
		section, kind, phase string
		do                   func(envoyConf) func(context.Context, int) error
	}{
		{SectionPost, "encrypt-only POST " + WritePath, "write", func(c envoyConf) func(context.Context, int) error {
			return poster(client, c.env.base+WritePath, body, tokens, c.rkms)
		}},
		{SectionGet, "decrypt-only GET " + ReadPath + "/{id}", "read", func(c envoyConf) func(context.Context, int) error {
			return getter(client, c.env.base+ReadPath+"/", f.Records, tokens, c.rkms)
		}},
	}
	for _, k := range kinds {
		if !f.runs(k.section) {
			continue
		}
		var ts []target
		for _, c := range confs {
			ts = append(ts, target{name: c.name, child: c.stats, do: k.do(c), envoy: c.env.envoy.Pid()})
		}
		run, err := measureRoute(ctx, k.kind, k.phase, ts, f, logf)
		if err != nil {
			return err
		}
		rep.Routes = append(rep.Routes, run)
	}
	if !f.runs(SectionHealth) {
		return nil
	}
	// The unprotected route: the same GET /healthz through Envoy without ext_proc and through
	// the rkms configuration, where ext_proc is disabled on the route.
	health := []target{
		{name: confs[0].name, child: confs[0].stats, do: healthGetter(client, confs[0].env.base+HealthPath), envoy: confs[0].env.envoy.Pid()},
		{name: confs[2].name, child: confs[2].stats, do: healthGetter(client, confs[2].env.base+HealthPath), envoy: confs[2].env.envoy.Pid()},
	}
	if err := warm(ctx, health); err != nil {
		return err
	}
	if err := fileTraces(f, "warm-up"); err != nil {
		return err
	}
	logf("envoy: unprotected GET %s, maximum throughput with %d clients, %s each", HealthPath, f.MaxWorkers, f.Duration)
	rep.Health, err = alternate(ctx, health, f, func(ctx context.Context, d time.Duration, do func(context.Context, int) error) *Result {
		return closedLoop(ctx, f.MaxWorkers, d, f.MaxRequests, do)
	})
	if err != nil {
		return err
	}
	return fileTraces(f, "healthz")
}

// measureRoute measures one route kind: each configuration's maximum throughput (closed loop,
// alternating rounds), then each at half the no-op's maximum (open loop).
// Slow-stream traces are filed under phase-max and phase-half ([fileTraces]).
func measureRoute(ctx context.Context, kind, phase string, ts []target, f *Flags, logf func(string, ...any)) (*RouteRun, error) {
	if err := warm(ctx, ts); err != nil {
		return nil, err
	}
	if err := fileTraces(f, "warm-up"); err != nil {
		return nil, err
	}
	run := &RouteRun{Kind: kind}
	logf("envoy %s: maximum throughput of each configuration with %d clients, %s each", kind, f.MaxWorkers, f.Duration)
	var err error
	run.Max, err = alternate(ctx, ts, f, func(ctx context.Context, d time.Duration, do func(context.Context, int) error) *Result {
		return closedLoop(ctx, f.MaxWorkers, d, f.MaxRequests, do)
	})
	if err == nil {
		err = fileTraces(f, phase+"-max")
	}
	if err != nil {
		return nil, err
	}
	run.Rate = run.Max[1].Result.Throughput() / 2
	logf("envoy %s: %.0f req/s offered to each configuration, %s each", kind, run.Rate, f.Duration)
	run.Half, err = alternate(ctx, ts, f, func(ctx context.Context, d time.Duration, do func(context.Context, int) error) *Result {
		return openLoop(ctx, run.Rate, d, f.MaxWorkers, do)
	})
	if err == nil {
		err = fileTraces(f, phase+"-half")
	}
	return run, err
}

// warm sends every path its first requests (connections, Envoy's first requests) before
// measuring.
func warm(ctx context.Context, ts []target) error {
	for _, t := range ts {
		if r := closedLoop(ctx, 4, 500*time.Millisecond, 2000, t.do); r.Errors > 0 {
			return fmt.Errorf("%s warm-up: %d errors, first: %w", t.name, r.Errors, r.FirstErr)
		}
	}
	return nil
}

// ciphertexts counts rkms ciphertexts in a JSON body.
func ciphertexts(b []byte) int { return bytes.Count(b, []byte(`"rkms:`)) }

// doRequest sends req and returns the body of a response with status want.
func doRequest(client *http.Client, req *http.Request, want int) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, got)
	}
	return got, nil
}

// poster returns a request function that POSTs body to url (the encrypt-only route) for the
// tenants in turn. Through rkms the app's answer (the stored record) must hold the sealed
// fields, elsewhere plaintext: the response is not decrypted on this route.
func poster(client *http.Client, url string, body []byte, tokens []string, sealed bool) func(ctx context.Context, n int) error {
	var next atomic.Int64
	want := 0
	if sealed {
		want = TaggedFields
	}
	return func(ctx context.Context, _ int) error {
		tenant := int(next.Add(1)-1) % len(tokens)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", tokens[tenant])
		got, err := doRequest(client, req, http.StatusCreated)
		if err == nil && ciphertexts(got) != want {
			err = fmt.Errorf("POST %s: answer holds %d ciphertexts, want %d", url, ciphertexts(got), want)
		}
		return err
	}
}

// getter returns a request function that GETs the stored records 0..records-1 in turn from
// prefix (the decrypt-only route), each with its own tenant's token. Through rkms the answer
// must be opened (no ciphertext left), elsewhere it is the sealed record as stored.
func getter(client *http.Client, prefix string, records int, tokens []string, opened bool) func(ctx context.Context, n int) error {
	var next atomic.Int64
	want := TaggedFields
	if opened {
		want = 0
	}
	return func(ctx context.Context, _ int) error {
		i := int(next.Add(1)-1) % records
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, prefix+strconv.Itoa(i), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", tokens[i])
		got, err := doRequest(client, req, http.StatusOK)
		if err == nil && ciphertexts(got) != want {
			err = fmt.Errorf("GET %s%d: answer holds %d ciphertexts, want %d", prefix, i, ciphertexts(got), want)
		}
		return err
	}
}

// healthGetter returns a request function that GETs url (the unprotected route, no token).
func healthGetter(client *http.Client, url string) func(ctx context.Context, n int) error {
	return func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		_, err = doRequest(client, req, http.StatusOK)
		return err
	}
}

// prepareRecords seals body for tenants 0..n-1 through rkms's encrypt-only policy (direct
// ext_proc, as Envoy would present the POST) and stores them in the app as records "0".."n-1"
// of ReadPath's collection, with the app's bulk import (a database load: not through Envoy).
func prepareRecords(ctx context.Context, rkmsAddr, appBase string, body []byte, n int) error {
	client, closeFn, err := dialExtProc(rkmsAddr)
	if err != nil {
		return err
	}
	defer closeFn()
	sealed := make([][]byte, n)
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				b, err := sealRecord(ctx, client, body, i)
				if err != nil {
					errs <- fmt.Errorf("seal record %d: %w", i, err)
					return
				}
				sealed[i] = b
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	const batch = 1000 // 1.5 MB per import, under the app's body limit
	for start := 0; start < n; start += batch {
		var nd bytes.Buffer
		for i := start; i < min(start+batch, n); i++ {
			nd.WriteString(`{"id":"` + strconv.Itoa(i) + `",`)
			nd.Write(sealed[i][1:])
			nd.WriteByte('\n')
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, appBase+ReadPath+"/_import", &nd)
		if err != nil {
			return err
		}
		if _, err := doRequest(http.DefaultClient, req, http.StatusOK); err != nil {
			return fmt.Errorf("import records: %w", err)
		}
	}
	return nil
}

// sealRecord plays the request half of tenant n's POST on the encrypt-only route and returns
// the sealed body.
func sealRecord(ctx context.Context, client extprocv3.ExternalProcessorClient, body []byte, n int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, extproc.PolicyMetadataKey, WritePolicy), 10*time.Second)
	defer cancel()
	st, err := client.Process(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(requestHeaders(WritePath, "POST", len(body), n)); err != nil {
		return nil, err
	}
	if _, err := st.Recv(); err != nil {
		return nil, err
	}
	if err := st.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}}); err != nil {
		return nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		return nil, err
	}
	if ir := resp.GetImmediateResponse(); ir != nil {
		return nil, fmt.Errorf("immediate response %d: %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	sealed := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
	if err := checkSealed(sealed); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(sealed), "{") {
		return nil, fmt.Errorf("sealed body is not a JSON object")
	}
	_ = st.CloseSend()
	return sealed, nil
}
