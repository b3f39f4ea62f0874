// Package apigateway polls asynchronous API import and export tasks of Huawei Cloud and Open Telekom Cloud
// API Gateway: GET /v2/{project_id}/apigw/instances/{instance_id}/async-tasks/{task_id} ("Querying the Result
// of an Asynchronous Task"). It authenticates with a user token (X-Auth-Token), an IAM token obtained by
// password login (POST {iam}/v3/auth/tokens, token in X-Subject-Token), or AK/SK request signing
// (SDK-HMAC-SHA256, package aksk).
package apigateway

import (
	"context"
	"net/http"
	"net/url"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// checkTaskID is polled by Check: a task ID that never exists, so that a documented 404 (APIG.3093) proves the
// gateway answers and accepts the credentials without touching a real task.
const checkTaskID = "00000000000000000000000000000000"

// sender sends the request build makes to the gateway with this backend's credentials attached. build makes
// the request anew for each send (a resend after a renewed token included), so that its body is sent whole
// each time; body is that exact body, which AK/SK signing hashes.
type sender func(ctx context.Context, build func() (*http.Request, error), body []byte) (*backend.Response, error)

type apiGateway struct {
	baseURL  *url.URL
	project  string
	instance string
	send     sender
}

// New builds an API Gateway backend from a spec with apiGateway settings and a Secret holding a token,
// username + password, or accessKey + secretKey (spec.apiGateway.authMethod chooses when it holds several).
func New(cfg backend.Config) (backend.Backend, error) {
	settings := cfg.Spec.APIGateway
	if settings == nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "spec.apiGateway with projectID and instanceID is required for type APIGateway")
	}
	base, err := backend.BaseURL("spec.url", cfg.Spec.URL)
	if err != nil {
		return nil, err
	}
	a := &apiGateway{baseURL: base, project: settings.ProjectID, instance: settings.InstanceID}
	switch authMethodOf(settings.AuthMethod, cfg.Credentials) {
	case v1alpha1.APIGatewayAuthToken:
		a.send = tokenSender(cfg.Client, backend.NewFixedSession(cfg.Credentials.Get("token")))
	case v1alpha1.APIGatewayAuthPassword:
		login, err := newPasswordLogin(cfg, base)
		if err != nil {
			return nil, err
		}
		session := backend.NewSession(login.login, tokenRefreshBefore, cfg.OnLogin).RetryRefusedLoginsAfter(cfg.FirstLoginRetry)
		a.send = tokenSender(cfg.Client, session)
	case v1alpha1.APIGatewayAuthAKSK:
		a.send = signingSender(cfg.Client, settings.ProjectID, cfg.Credentials.Get("accessKey"), cfg.Credentials.Get("secretKey"))
	default:
		return nil, backend.MissingCredentials([]string{"token"}, []string{"username", "password"}, []string{"accessKey", "secretKey"})
	}
	return a, nil
}

// authMethodOf returns the method the spec chose, or the first whose keys the Secret holds; "" when the
// chosen or any method lacks its keys.
func authMethodOf(chosen v1alpha1.APIGatewayAuthMethod, creds backend.Credentials) v1alpha1.APIGatewayAuthMethod {
	keys := map[v1alpha1.APIGatewayAuthMethod][]string{
		v1alpha1.APIGatewayAuthToken:    {"token"},
		v1alpha1.APIGatewayAuthPassword: {"username", "password"},
		v1alpha1.APIGatewayAuthAKSK:     {"accessKey", "secretKey"},
	}
	if chosen != "" {
		if creds.Has(keys[chosen]...) {
			return chosen
		}
		return ""
	}
	for _, m := range []v1alpha1.APIGatewayAuthMethod{v1alpha1.APIGatewayAuthToken, v1alpha1.APIGatewayAuthPassword, v1alpha1.APIGatewayAuthAKSK} {
		if creds.Has(keys[m]...) {
			return m
		}
	}
	return ""
}

func (a *apiGateway) Poll(ctx context.Context, taskID string) (backend.Observation, error) {
	u, err := a.taskURL(taskID)
	if err != nil {
		return backend.Observation{}, err
	}
	resp, err := a.get(ctx, u)
	if err != nil {
		return backend.Observation{}, err
	}
	return parseTaskReply(resp)
}

func (a *apiGateway) Check(ctx context.Context) error {
	u, err := a.taskURL(checkTaskID)
	if err != nil {
		return err
	}
	resp, err := a.get(ctx, u)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return errorFromReply(resp)
}

// taskURL is the task's path with the task ID as one escaped segment. The reference types task_id as a
// String and documents no pattern (tasks are started with 32 hex digits, but that is an example, not a rule),
// so only what backend.PathSegment refuses is refused.
func (a *apiGateway) taskURL(taskID string) (*url.URL, error) {
	return backend.TaskURL(a.baseURL, taskID, "v2", a.project, "apigw", "instances", a.instance, "async-tasks")
}

// get sends a GET of u.
func (a *apiGateway) get(ctx context.Context, u *url.URL) (*backend.Response, error) {
	return a.send(ctx, func() (*http.Request, error) { return newGet(ctx, u) }, nil)
}

func newGet(ctx context.Context, u *url.URL) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, backend.Errorf(backend.KindTerminal, "cannot build a request to %s: %v", u.Host, err)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}
