package apigateway

import (
	"context"
	"net/http"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Send sends a start request (an AsyncTask's spec.submit, such as POST
// /v2/{project_id}/apigw/instances/{instance_id}/openapi/async-import) to spec.url with the backend's
// credentials, as polls do: X-Auth-Token (a fixed token, or an IAM token renewed once on a 401 and the
// request sent again, body unchanged), or an AK/SK signature over the request and its body. Every answer is
// returned as it is, for the caller to classify, except a 401 that the renewed token (or a token or key from
// the Secret, which cannot be renewed) gets too: that is the KindAuthentication error a poll gets, and the
// gateway did not act on the request. A 403 (a missing permission) is returned as an answer.
func (a *apiGateway) Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error) {
	base := a.baseURL.String()
	resp, err := a.send(ctx, func() (*http.Request, error) { return req.HTTPRequest(ctx, base) }, req.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errorFromReply(resp)
	}
	return resp, nil
}
