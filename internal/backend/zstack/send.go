package zstack

import (
	"context"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Send sends a start request (an AsyncTask's spec.submit: an asynchronous API call such as POST
// /zstack/v1/vm-instances, with X-Job-UUID) with "Authorization: OAuth <session>", as polls do. The path is
// appended to spec.url without a trailing /zstack or /zstack/v1, as polls' are, so it is the documented path
// (/zstack/v1/...) whichever form spec.url takes. An answer saying the session expired (503 with ID.1001, or
// 401) logs in again once and sends the request again, body and X-Job-UUID unchanged: ZStack checks the
// session before it looks at the job. Every answer is returned as it is, for the caller to classify, except
// one saying the session expired that the renewed session (or a sessionID from the Secret, which cannot be
// renewed) gets too: that is the KindAuthentication error a poll gets, and ZStack did not act on the request.
func (z *zstack) Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error) {
	base := z.baseURL.String()
	resp, err := z.session.Do(ctx, func(session string) (*backend.Response, error) {
		r, err := req.HTTPRequest(ctx, base)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "OAuth "+session)
		return z.client.Do(ctx, r)
	}, sessionExpired)
	if err != nil {
		return nil, z.explain(err)
	}
	if sessionExpired(resp) {
		return nil, z.explain(errorFromReply(resp))
	}
	return resp, nil
}
