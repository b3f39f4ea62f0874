package backend

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
)

// StartRequest is the request that starts a vendor's job (an AsyncTask's spec.submit), built from one of the
// backend's spec.operations.
type StartRequest struct {
	// Method is POST or PUT.
	Method string
	// Path is appended to the backend's URL as it is: already escaped, starting with "/", with its query.
	Path string
	// Header holds the operation's static headers, the content type and the idempotency key. The vendor
	// package adds its authentication.
	Header http.Header
	// Body is the encoded body, sent as it is (and again, unchanged, when a session is renewed).
	Body []byte
}

// Sender is a Backend that can start jobs: it sends one StartRequest through the backend's own
// authentication, session, rate limit, request timeout, body limit and network policy, and returns the
// vendor's answer whatever its HTTP status. A session the vendor says expired is renewed and the request sent
// once more, as for polls: the vendor did not act on a request it refused to authenticate.
type Sender interface {
	Send(ctx context.Context, req StartRequest) (*Response, error)
}

// WriteTrace tells whether any request sent under a context reached the wire: the submission protocol must
// know whether a failed send may have reached the vendor (its outcome is then unknown) or certainly did not
// (it is retried, and is not an attempt).
type WriteTrace struct {
	path    string
	written atomic.Bool
}

// Written reports whether a request was written, in part or whole, to a connection.
func (w *WriteTrace) Written() bool { return w.written.Load() }

type writeTraceKey struct{}

// WithWriteTrace returns a context under which Client.Do records in the returned WriteTrace every request to
// startPath (a StartRequest's Path: the request URI ends with it) that it starts writing to a connection.
// Other requests sent under the context, such as a login before the start request, are not recorded: their
// failure says nothing about the job.
func WithWriteTrace(ctx context.Context, startPath string) (context.Context, *WriteTrace) {
	trace := &WriteTrace{path: startPath}
	return context.WithValue(ctx, writeTraceKey{}, trace), trace
}

// traced adds the hooks of the context's WriteTrace, if any, to a request to its path. A request counts as
// written from the first header byte on (WroteHeaderField): a server may act on a request whose body it never
// fully read.
func traced(req *http.Request) *http.Request {
	trace, ok := req.Context().Value(writeTraceKey{}).(*WriteTrace)
	if !ok || !strings.HasSuffix(req.URL.RequestURI(), trace.path) {
		return req
	}
	hooks := &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { trace.written.Store(true) },
		WroteRequest:     func(httptrace.WroteRequestInfo) { trace.written.Store(true) },
	}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), hooks))
}
