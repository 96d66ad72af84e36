package envoy

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	downconnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// The limits that keep one client from exhausting rkms through Envoy (README.md, "Resource limits").
// rkms's own limits, whose defaults Envoy's must stay under (issue 13: extproc.stream_timeout,
// extproc.idle_timeout, extproc.first_message_timeout). Envoy gives up first on every
// legitimate request, so rkms's limits only ever cut streams Envoy no longer wants.
const (
	rkmsStreamTimeout = 60 * time.Second
	rkmsIdleTimeout   = 30 * time.Second
	// slowBodies is how many slow bodies the abuse tests hold open (internal/testing/chaos): the
	// connection limit must leave room for them and for real clients.
	slowBodies = 1100
)

// checkLimits: the buffer filter sits right before ext_proc with the listener's limit and is off
// exactly where ext_proc is; the timeouts end a stream before rkms's do; the rkms cluster's
// circuit breakers match rkms's stream limit; the connection limit is set. (checkPeerAttributes
// checks that rkms gets the client's address.)
func checkLimits(t *testing.T, b *bootstrapv3.Bootstrap, hcm *hcmv3.HttpConnectionManager, ep *extprocfilterv3.ExternalProcessor) {
	t.Helper()
	filters := hcm.GetHttpFilters()
	for i, f := range filters {
		if f.GetName() != "envoy.filters.http.ext_proc" {
			continue
		}
		if i == 0 || filters[i-1].GetName() != "envoy.filters.http.buffer" {
			t.Fatal("no buffer filter immediately before ext_proc: a slow body would hold an rkms stream")
		}
		buf := unpack(t, filters[i-1].GetTypedConfig(), &bufferv3.Buffer{})
		limit := b.GetStaticResources().GetListeners()[0].GetPerConnectionBufferLimitBytes().GetValue()
		if got := buf.GetMaxRequestBytes().GetValue(); got != limit {
			t.Errorf("buffer max_request_bytes %d, want the listener's buffer limit %d", got, limit)
		}
	}
	for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		where := r.GetMatch().GetPath() + r.GetMatch().GetPrefix()
		var bufOff bool
		var bufLimit uint32
		if a := r.GetTypedPerFilterConfig()["envoy.filters.http.buffer"]; a != nil {
			br := unpack(t, a, &bufferv3.BufferPerRoute{})
			bufOff, bufLimit = br.GetDisabled(), br.GetBuffer().GetMaxRequestBytes().GetValue()
		}
		streams := perRoute(t, r).GetOverrides().GetProcessingMode().GetRequestBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
		// Where ext_proc is off the buffer is off too, or holds at most 1 byte so that no body
		// passes (ingress's unprotected routes: HTTP/2 can send one without content-length).
		noBuffer := bufOff || bufLimit == 1
		if noBuffer != (routeDisabled(t, r) || streams) || bufLimit == 1 && !routeDisabled(t, r) {
			t.Errorf("route %s: buffer disabled %v (limit %d) but ext_proc disabled %v, streamed %v: the buffer is off (or 1 byte) exactly where ext_proc is off or streams",
				where, bufOff, bufLimit, routeDisabled(t, r), streams)
		}
		checkRouteTimeout(t, where, r, ep.GetMessageTimeout().AsDuration())
	}
	for name, got := range map[string]time.Duration{
		"request_headers_timeout": hcm.GetRequestHeadersTimeout().AsDuration(),
		"request_timeout":         hcm.GetRequestTimeout().AsDuration(),
		"stream_idle_timeout":     hcm.GetStreamIdleTimeout().AsDuration(),
	} {
		if got <= 0 || got > rkmsIdleTimeout {
			t.Errorf("%s %v: want set and at most rkms's idle timeout %v", name, got, rkmsIdleTimeout)
		}
	}
	if h, r := hcm.GetRequestHeadersTimeout().AsDuration(), hcm.GetRequestTimeout().AsDuration(); h >= r {
		t.Errorf("request_headers_timeout %v not below request_timeout %v", h, r)
	}
	checkCircuitBreakers(t, b.GetStaticResources().GetClusters())
	checkConnectionLimit(t, b)
}

// checkRouteTimeout: an explicit route timeout, short enough that the whole ext_proc stream
// (two request messages, the app's answer, two response messages) ends before rkms's
// stream_timeout, and the app's silence before rkms's idle_timeout.
func checkRouteTimeout(t *testing.T, where string, r *routev3.Route, message time.Duration) {
	t.Helper()
	rt := r.GetRoute().GetTimeout()
	if rt == nil || rt.AsDuration() <= 0 {
		t.Errorf("route %s: no explicit timeout (0 would wait for the app forever)", where)
		return
	}
	if d := rt.AsDuration(); d >= rkmsIdleTimeout || 4*message+d >= rkmsStreamTimeout {
		t.Errorf("route %s: timeout %v: a stream could outlive rkms's idle (%v) or stream (%v) timeout", where, d, rkmsIdleTimeout, rkmsStreamTimeout)
	}
}

func checkCircuitBreakers(t *testing.T, clusters []*clusterv3.Cluster) {
	t.Helper()
	for _, c := range clusters {
		if c.GetName() != "rkms" {
			continue
		}
		th := c.GetCircuitBreakers().GetThresholds()
		if len(th) != 1 {
			t.Fatalf("rkms cluster: %d circuit breaker thresholds, want 1 (DEFAULT)", len(th))
		}
		if got := th[0].GetMaxRequests().GetValue(); got != extproc.DefaultMaxConcurrentStreams {
			t.Errorf("rkms cluster max_requests %d, want rkms's max_concurrent_streams %d", got, extproc.DefaultMaxConcurrentStreams)
		}
		if p := th[0].GetMaxPendingRequests().GetValue(); p == 0 || p > th[0].GetMaxRequests().GetValue() {
			t.Errorf("rkms cluster max_pending_requests %d: want set, at most max_requests", p)
		}
		if th[0].GetMaxConnections().GetValue() == 0 {
			t.Error("rkms cluster max_connections not set")
		}
		return
	}
	t.Error("no rkms cluster")
}

func checkConnectionLimit(t *testing.T, b *bootstrapv3.Bootstrap) {
	t.Helper()
	for _, rm := range b.GetOverloadManager().GetResourceMonitors() {
		if rm.GetName() != "envoy.resource_monitors.global_downstream_max_connections" {
			continue
		}
		c := unpack(t, rm.GetTypedConfig(), &downconnv3.DownstreamConnectionsConfig{})
		if n := c.GetMaxActiveDownstreamConnections(); n < 2*slowBodies {
			t.Errorf("max_active_downstream_connections %d: want room for %d slow bodies and as many clients", n, slowBodies)
		}
		return
	}
	t.Error("no downstream connection limit (overload_manager global_downstream_max_connections)")
}

// TestSlowBodyOpensNoStream: in the real Envoy, a request whose body is still arriving opens no
// ext_proc stream (the buffer filter holds it); once the body is complete it goes to rkms and
// through as usual.
func TestSlowBodyOpensNoStream(t *testing.T) {
	testenv.Integration(t)
	st := envoytest.Start(t, ingress(nil), false)
	body := `{"ssn":"123-45-6789","contact":{"email":"a@example.com"}}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(st.URL(""), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /patients/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", envoytest.Token(t, envoytest.DefaultTestTenant), len(body))
	if _, err := fmt.Fprint(conn, head+body[:10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, ok := st.Rkms.Last("/patients/slow"); ok {
		t.Fatal("an ext_proc stream opened before the request body was complete")
	}
	if _, err := fmt.Fprint(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("completed slow body: got %q, want 200", buf[:n])
	}
	s, ok := st.Rkms.Last("/patients/slow")
	if !ok || strings.Join(s.Recv, ",") != "request_headers,request_body,response_headers,response_body" {
		t.Fatalf("stream after the body completed: %v %v", ok, s.Recv)
	}
	if a, _ := s.Attributes[envoytest.AttrSourceAddress].(string); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("attribute source.address %q, want the client's 127.0.0.1:PORT", a)
	}
	// A large legitimate body (just under 1 MiB) still goes through.
	big := `{"ssn":"1","pad":"` + strings.Repeat("x", 1<<20-64) + `"}`
	if r := st.Do(t, http.MethodPost, "/patients/big", big); r.Status != http.StatusOK {
		t.Fatalf("body of %d bytes: %d %s", len(big), r.Status, r.Body)
	}
}
