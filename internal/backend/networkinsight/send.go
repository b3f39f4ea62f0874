package networkinsight

import (
	"context"
	"net/http"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Send sends a start request (an AsyncTask's spec.submit, such as POST /api/ni/groups/discovered-applications/save)
// to spec.url with the session's "Authorization: NetworkInsight <token>", as polls do: a 401 logs in again
// once and sends the request again, body unchanged. Every answer is returned as it is, for the caller to
// classify, except a 401 that the renewed session (or a token from the Secret, which cannot be renewed) gets
// too: that is the KindAuthentication error a poll gets, and the vendor did not act on the request.
func (n *networkInsight) Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error) {
	resp, err := n.session.Do(ctx, func(token string) (*backend.Response, error) {
		r, err := req.HTTPRequest(ctx, n.baseURL)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "NetworkInsight "+token)
		return n.client.Do(ctx, r)
	}, backend.Unauthorized)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errorFromReply(resp)
	}
	return resp, nil
}
