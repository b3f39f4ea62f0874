package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// MaxBodyBytes is the most of a response body the operator reads by default (and at most: the API caps
	// spec.maxResponseBytes there); a longer body is an error.
	MaxBodyBytes = 8 << 20
	// MaxRetryAfter caps how long a vendor's Retry-After pauses a backend.
	MaxRetryAfter = 5 * time.Minute
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Timeout limits one request, body included.
	Timeout time.Duration
	// QPS and Burst limit the requests to this backend, all tasks together.
	QPS   float64
	Burst int
	// RootCAs replaces the system roots when set.
	RootCAs *x509.CertPool
	// ServerName overrides the name the server certificate is checked against.
	ServerName string
	// InsecureSkipVerify turns certificate verification off.
	InsecureSkipVerify bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// NetworkPolicy limits the addresses the backend's connections may go to; the zero value applies the
	// defaults.
	NetworkPolicy NetworkPolicy
	// MaxBodyBytes is the most of a response body read (spec.maxResponseBytes); 0 means MaxBodyBytes.
	MaxBodyBytes int64
	// OnRateLimitWait, when set, is called with the wait of every request that waited for the rate limit
	// (for metrics); a request deferred instead of waiting is the caller's to count.
	OnRateLimitWait func(time.Duration)

	// resolver replaces the system resolver (tests).
	resolver *net.Resolver
}

// Client sends a backend's requests: one http.Client (so connections are reused), one rate limiter shared by
// all the backend's tasks, a per-request timeout, a body size limit, and a pause when the vendor answers 429
// or 503 with Retry-After.
type Client struct {
	http    *http.Client
	limiter *rate.Limiter
	timeout time.Duration
	now     func() time.Time
	// maxBody is the most of a response body read; a longer body is an error.
	maxBody int64
	// onRateLimitWait is ClientOptions.OnRateLimitWait.
	onRateLimitWait func(time.Duration)

	mu          sync.Mutex
	pausedUntil time.Time
}

// NewClient builds a Client.
func NewClient(opts ClientOptions) *Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // the vendor URL is reached directly; a proxy must not see its credentials
	transport.DialContext = newDialer(opts.NetworkPolicy, opts.resolver).DialContext
	transport.MaxIdleConnsPerHost = 16
	transport.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            opts.RootCAs,
		ServerName:         opts.ServerName,
		InsecureSkipVerify: opts.InsecureSkipVerify, //nolint:gosec // only when the user asks for it
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	maxBody := opts.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = MaxBodyBytes
	}
	return &Client{
		http: &http.Client{
			Transport:     transport,
			CheckRedirect: checkRedirect,
		},
		limiter:         rate.NewLimiter(rate.Limit(opts.QPS), opts.Burst),
		timeout:         opts.Timeout,
		now:             now,
		maxBody:         maxBody,
		onRateLimitWait: opts.OnRateLimitWait,
	}
}

// Close drops the Client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// RateLimit returns the requests per second and the burst the client keeps to.
func (c *Client) RateLimit() (qps float64, burst int) {
	return float64(c.limiter.Limit()), c.limiter.Burst()
}

// Response is a vendor's answer, read whole.
type Response struct {
	StatusCode int
	Header     http.Header
	// Body is never changed once read, so that what is parsed from it (a result, say) may reference it
	// instead of copying it.
	Body []byte
	// RetryAfter is the vendor's Retry-After on a 429 or 503, capped at MaxRetryAfter; 0 otherwise.
	RetryAfter time.Duration
}

// Do sends req within the rate limit and the request timeout and reads the answer. It fails with a
// KindTransient *Error when the backend is paused by an earlier Retry-After, when the request cannot be sent
// or answered in time, and when the body is larger than the client's body limit. Any HTTP status is returned as a
// Response: what it means is the vendor's to say.
func (c *Client) Do(ctx context.Context, req *http.Request) (*Response, error) {
	if until, wait := c.pause(); wait > 0 {
		// The message names the end of the pause, not the time left, so it stays the same across polls.
		return nil, &Error{Kind: KindTransient, RetryAfter: wait,
			Message: fmt.Sprintf("vendor asked to retry later (Retry-After); requests to this backend are paused until %s", until.UTC().Format(time.RFC3339))}
	}
	if err := c.waitForRateLimit(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.http.Do(traced(req.WithContext(ctx)))
	if err != nil {
		return nil, requestError(req, err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only body: nothing to report
	body, err := readBody(resp, c.maxBody)
	if err != nil {
		return nil, requestError(req, err)
	}
	if int64(len(body)) > c.maxBody {
		return nil, Errorf(KindTransient, "vendor answer from %s is larger than %s", req.URL.Host, byteSize(c.maxBody))
	}
	out := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		out.RetryAfter = c.pauseFor(resp.Header.Get("Retry-After"))
	}
	return out, nil
}

// readBody reads at most limit+1 bytes of a body, so that the caller can tell a body over the limit. A body
// that states its length is read into one buffer of that size (never more than the limit), instead of the
// doubling buffer of io.ReadAll, which allocates about twice the body.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	r := io.LimitReader(resp.Body, limit+1)
	if n := resp.ContentLength; n >= 0 && n <= limit {
		// One byte more than stated, to see the end of the body without growing the buffer; a body longer
		// than it states grows it as io.ReadAll would.
		buf := make([]byte, 0, n+1)
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			m, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err == io.EOF {
				return buf, nil
			}
			if err != nil {
				return buf, err
			}
		}
	}
	return io.ReadAll(r)
}

// byteSize names a size in MiB or KiB when it is a whole number of them, else in bytes.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// maxRateLimitWait is the longest a request waits for the backend's rate limit while holding a worker; a
// longer wait gives the worker back (a KindDeferred error) and the task is asked again later.
const maxRateLimitWait = time.Second

func (c *Client) waitForRateLimit(ctx context.Context) error {
	reservation := c.limiter.Reserve()
	if !reservation.OK() {
		return Errorf(KindInvalidConfig, "the rate limit of this backend admits no request")
	}
	wait := reservation.Delay()
	if wait > maxRateLimitWait {
		reservation.Cancel()
		return &Error{Kind: KindDeferred, RetryAfter: wait, Message: "waiting for the backend's rate limit"}
	}
	if wait == 0 {
		return nil
	}
	if c.onRateLimitWait != nil {
		c.onRateLimitWait(wait)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		reservation.Cancel()
		return &Error{Kind: KindDeferred, RetryAfter: wait, Message: "waiting for the backend's rate limit"}
	}
}

// pauseFor parses a Retry-After value (seconds or an HTTP date), pauses the backend that long (capped), and
// returns the pause.
func (c *Client) pauseFor(retryAfter string) time.Duration {
	if retryAfter == "" {
		return 0
	}
	now := c.now()
	var wait time.Duration
	if secs, err := strconv.Atoi(retryAfter); err == nil {
		wait = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(retryAfter); err == nil {
		wait = at.Sub(now)
	}
	wait = min(max(wait, 0), MaxRetryAfter)
	if wait == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Rounded up to a whole second, so the message naming it stays the same while the pause lasts.
	if until := now.Add(wait + time.Second - 1).Truncate(time.Second); until.After(c.pausedUntil) {
		c.pausedUntil = until
	}
	return wait
}

// pause returns the end of the current Retry-After pause and the time left of it.
func (c *Client) pause() (time.Time, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pausedUntil, c.pausedUntil.Sub(c.now())
}

// requestError turns a transport failure into a message that names the host but not the path or query,
// which may carry task IDs or signatures.
func requestError(req *http.Request, err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if denied, ok := deniedError(err); ok {
		return Errorf(KindInvalidConfig, "the operator's network policy refuses to connect to %s (address %s): %s", req.URL.Host, denied.Address, denied.Rule)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return Errorf(KindTransient, "cannot reach %s: no answer within the request timeout", req.URL.Host)
	case errors.Is(err, context.Canceled):
		return Errorf(KindTransient, "request to %s was cancelled", req.URL.Host)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return Errorf(KindTransient, "cannot reach %s: TLS certificate not trusted: %v (set tls.caSecretRef to trust its CA)", req.URL.Host, certErr.Err)
	}
	return Errorf(KindTransient, "cannot reach %s: %v", req.URL.Host, err)
}
