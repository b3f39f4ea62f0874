package backend

import (
	"bytes"
	"context"
	"net/http"
	"strings"
)

// HTTPRequest builds the request that sends r to a vendor whose base URL is base (a vendor package's, without
// a trailing slash): r.Path appended as it is, r.Header copied, and Accept: application/json unless r.Header
// names another. The body reads r.Body from its start, so a vendor package builds the request anew for each
// send, and a resend after a renewed session sends the body unchanged. The vendor package adds its
// authentication. Errors are KindInvalidConfig: a path that does not start with "/" or does not make a URL;
// they quote neither.
func (r StartRequest) HTTPRequest(ctx context.Context, base string) (*http.Request, error) {
	if !strings.HasPrefix(r.Path, "/") {
		return nil, Errorf(KindInvalidConfig, "the start request's path must start with /")
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, strings.TrimSuffix(base, "/")+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		return nil, Errorf(KindInvalidConfig, "cannot build the start request: its method or path does not make a request")
	}
	for name, values := range r.Header {
		req.Header[name] = append([]string(nil), values...)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	return req, nil
}
