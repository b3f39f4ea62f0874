package backend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/transport"
)

// debugLogger is a logger at client-go's most verbose level (-v=10) that keeps every line.
type debugLogger struct {
	mu    sync.Mutex
	lines []string
}

func (d *debugLogger) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.lines = append(d.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
}

func (d *debugLogger) text() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// client-go's debug round-tripper (what -v=6..9 wraps the operator's API server client in) masks the
// Authorization header: the operator's own bearer token to the API server does not reach the log.
func TestClientGoDebugRoundTripperMasksAuthorization(t *testing.T) {
	const secret = "operator-service-account-token"
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer server.Close()

	var log debugLogger
	rt := transport.NewDebuggingRoundTripper(http.DefaultTransport, transport.DebugByContext)
	for _, auth := range []string{"Bearer " + secret, "Basic " + secret, secret} {
		req, _ := http.NewRequestWithContext(logr.NewContext(context.Background(), log.logger()), http.MethodGet, server.URL+"/api/v1/namespaces", nil)
		req.Header.Set("Authorization", auth)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	out := log.text()
	if !strings.Contains(out, "curl") || !strings.Contains(out, "<masked>") {
		t.Fatalf("the debug round-tripper logged nothing at -v=9; the test proves nothing:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("client-go's debug round-tripper printed the Authorization value:\n%s", out)
	}
}

// client-go masks only Authorization; vendor credentials travel in X-Auth-Token, X-Subject-Token, Cookie and
// signature headers, which it would print. So vendor requests must never go through it: the backend Client
// uses a plain http.Transport of its own, and a request whose context carries a -v=10 logger logs nothing.
func TestVendorRequestsDoNotGoThroughClientGoDebugLogging(t *testing.T) {
	const secret = "vendor-session-token"
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Subject-Token", secret)
		w.Header().Set("Set-Cookie", "session="+secret)
		w.WriteHeader(http.StatusOK)
	}))
	defer server.Close()

	c := newTestClient(nil)
	if _, plain := c.http.Transport.(*http.Transport); !plain {
		t.Fatalf("the vendor client's transport is %T, want a plain *http.Transport", c.http.Transport)
	}
	var log debugLogger
	req, _ := http.NewRequest(http.MethodGet, server.URL+"/v1/tasks/x", nil)
	req.Header.Set("X-Auth-Token", secret)
	req.Header.Set("Cookie", "session="+secret)
	req.Header.Set("Authorization", "Bearer "+secret)
	if _, err := c.Do(logr.NewContext(context.Background(), log.logger()), req); err != nil {
		t.Fatal(err)
	}
	if out := log.text(); out != "" {
		t.Errorf("a vendor request was logged:\n%s", out)
	}

	// The same request through client-go's wrapper would print the vendor token: the reason for the above.
	var wrapped debugLogger
	req, _ = http.NewRequestWithContext(logr.NewContext(context.Background(), wrapped.logger()), http.MethodGet, server.URL+"/v1/tasks/x", nil)
	req.Header.Set("X-Auth-Token", secret)
	resp, err := transport.NewDebuggingRoundTripper(http.DefaultTransport, transport.DebugByContext).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if !strings.Contains(wrapped.text(), secret) {
		t.Logf("client-go's debug round-tripper now masks X-Auth-Token too")
	}
}
