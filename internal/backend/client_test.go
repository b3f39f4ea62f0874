package backend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestClient(now func() time.Time) *Client {
	return NewClient(ClientOptions{Timeout: 2 * time.Second, QPS: 1000, Burst: 1000, Now: now})
}

func get(t *testing.T, c *Client, url string) (*Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(context.Background(), req)
}

func TestBodyOverTheLimitIsAnError(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := []byte(strings.Repeat("x", 1<<20))
		for range MaxBodyBytes>>20 + 1 {
			_, _ = w.Write(chunk)
		}
	}))
	defer server.Close()
	_, err := get(t, newTestClient(nil), server.URL)
	if KindOf(err) != KindTransient || !strings.Contains(err.Error(), "larger than 8 MiB") {
		t.Errorf("got %v, want a transient 'larger than 8 MiB' error", err)
	}
}

func TestBodyLimitIsTheBackendsOwn(t *testing.T) {
	const limit = 3 << 10
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("chunked") {
			w.(http.Flusher).Flush() // no Content-Length: the body is read without a stated size
		}
		_, _ = w.Write([]byte(strings.Repeat("x", len(r.URL.Query().Get("n")))))
	}))
	defer server.Close()
	c := NewClient(ClientOptions{Timeout: 2 * time.Second, QPS: 1000, Burst: 1000, MaxBodyBytes: limit})
	for _, chunked := range []string{"", "&chunked"} {
		resp, err := get(t, c, server.URL+"?n="+strings.Repeat("1", limit)+chunked)
		if err != nil || len(resp.Body) != limit {
			t.Errorf("a body right at the limit (%q): %v", chunked, err)
		}
		_, err = get(t, c, server.URL+"?n="+strings.Repeat("1", limit+1)+chunked)
		if KindOf(err) != KindTransient || !strings.Contains(err.Error(), "larger than 3 KiB") {
			t.Errorf("got %v, want a transient 'larger than 3 KiB' error", err)
		}
	}
}

func TestRetryAfterPausesTheBackend(t *testing.T) {
	requests := 0
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests++
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer server.Close()
	clock := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	c := newTestClient(func() time.Time { return clock })

	resp, err := get(t, c, server.URL)
	if err != nil || resp.RetryAfter != 30*time.Second {
		t.Fatalf("first request: %v, retryAfter %v", err, resp.RetryAfter)
	}
	_, err = get(t, c, server.URL)
	e, ok := AsError(err)
	if !ok || e.Kind != KindTransient || e.RetryAfter != 30*time.Second || requests != 1 {
		t.Fatalf("paused request: %v (sent %d requests), want a transient error without a request", err, requests)
	}
	clock = clock.Add(31 * time.Second)
	if _, err := get(t, c, server.URL); err != nil || requests != 2 {
		t.Fatalf("after the pause: %v, %d requests", err, requests)
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "86400")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer server.Close()
	resp, err := get(t, newTestClient(nil), server.URL)
	if err != nil || resp.RetryAfter != MaxRetryAfter {
		t.Errorf("got %v, retryAfter %v, want %v", err, resp.RetryAfter, MaxRetryAfter)
	}
}

func TestSlowVendorTimesOut(t *testing.T) {
	release := make(chan struct{})
	server := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer server.Close()
	defer close(release)
	c := NewClient(ClientOptions{Timeout: 100 * time.Millisecond, QPS: 10, Burst: 10})
	_, err := get(t, c, server.URL)
	if KindOf(err) != KindTransient || !strings.Contains(err.Error(), "no answer within the request timeout") {
		t.Errorf("got %v, want a timeout error", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		t.Errorf("redirect followed to %s with headers %v", r.URL, r.Header)
	}))
	defer target.Close()
	server := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer server.Close()
	resp, err := get(t, newTestClient(nil), server.URL)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Errorf("got %v, status %d, want the 302 itself", err, resp.StatusCode)
	}
}

func TestCredentialsNeverPrintTheirValues(t *testing.T) {
	creds := Credentials{"password": []byte("s3cr3t"), "username": []byte("admin")}
	for _, s := range []string{creds.String(), creds.GoString()} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "admin") {
			t.Errorf("credentials printed a value: %s", s)
		}
	}
}

func TestLongRateLimitWaitGivesTheWorkerBack(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer server.Close()
	c := NewClient(ClientOptions{Timeout: time.Second, QPS: 0.2, Burst: 1}) // one request per 5 s
	if _, err := get(t, c, server.URL); err != nil {
		t.Fatalf("first request: %v", err)
	}
	_, err := get(t, c, server.URL)
	e, ok := AsError(err)
	if !ok || e.Kind != KindDeferred || e.RetryAfter < 4*time.Second {
		t.Fatalf("got %v, want a Deferred error asking to come back in about 5 s", err)
	}
}
