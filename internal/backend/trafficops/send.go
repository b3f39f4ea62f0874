package trafficops

import (
	"context"
	"net/http"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Send sends a start request (an AsyncTask's spec.submit, such as POST
// /api/{version}/deliveryservices/sslkeys/generate/acme) to spec.url with the session's cookies, as polls do:
// a 401 logs in again once and sends the request again, body unchanged; the cookies an accepted answer
// re-issues are kept. Every answer is returned as it is, for the caller to classify, except a 401 that the
// renewed session gets too: that is the KindAuthentication error a poll gets, and the vendor did not act on
// the request. A 403 (a missing permission) is returned as an answer.
func (t *trafficOps) Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error) {
	base := t.base.String()
	resp, err := t.session.Do(ctx, func(c *cookies) (*backend.Response, error) {
		r, err := req.HTTPRequest(ctx, base)
		if err != nil {
			return nil, err
		}
		c.addTo(r)
		resp, err := t.client.Do(ctx, r)
		if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			c.refresh(resp.Header)
		}
		return resp, err
	}, backend.Unauthorized)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errorFromReply(resp)
	}
	return resp, nil
}
