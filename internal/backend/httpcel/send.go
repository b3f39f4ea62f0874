package httpcel

import (
	"context"
	"net/http"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Send sends a start request (an AsyncTask's spec.submit) to spec.url with the backend's credentials, through
// the same authenticator as polls: a fixed Bearer, Basic or header credential, or the login session, which an
// answer that spec.http.auth.login.expired says ended renews once, the request then sent again, body
// unchanged. spec.http.headers are the poll's and are not sent: an operation carries its own headers. Every
// answer is returned as it is, for the caller to classify, except one that the renewed session still gets
// refused by login.expired (the KindAuthentication error a poll gets) and a JSON answer over the shape
// limits (KindTransient, as for polls: its expressions could not read it).
func (h *httpBackend) Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error) {
	return h.auth.do(ctx, func() (*http.Request, error) { return req.HTTPRequest(ctx, h.base) })
}
