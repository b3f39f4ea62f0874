// Package apigateway polls asynchronous API import and export tasks of Huawei Cloud and Open Telekom Cloud
// API Gateway: GET /v2/{project_id}/apigw/instances/{instance_id}/async-tasks/{task_id} ("Querying the Result
// of an Asynchronous Task"), authenticated with a user token in X-Auth-Token.
package apigateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// checkTaskID is polled by Check: a task ID that never exists, so that a documented 404 (APIG.3093) proves the
// gateway answers and accepts the credentials without touching a real task.
const checkTaskID = "00000000000000000000000000000000"

type apiGateway struct {
	baseURL  *url.URL
	project  string
	instance string
	token    string
	client   *backend.Client
}

// New builds an API Gateway backend from a spec with apiGateway settings and a Secret holding a token.
func New(cfg backend.Config) (backend.Backend, error) {
	settings := cfg.Spec.APIGateway
	if settings == nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "spec.apiGateway with projectID and instanceID is required for type APIGateway")
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.Spec.URL, "/"))
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "spec.url is not a URL: %v", err)
	}
	if !cfg.Credentials.Has("token") {
		return nil, backend.MissingCredentials([]string{"token"})
	}
	return &apiGateway{
		baseURL:  base,
		project:  settings.ProjectID,
		instance: settings.InstanceID,
		token:    cfg.Credentials.Get("token"),
		client:   cfg.Client,
	}, nil
}

func (a *apiGateway) Poll(ctx context.Context, taskID string) (backend.Observation, error) {
	resp, err := a.get(ctx, taskID)
	if err != nil {
		return backend.Observation{}, err
	}
	return parseTaskReply(resp)
}

func (a *apiGateway) Check(ctx context.Context) error {
	resp, err := a.get(ctx, checkTaskID)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return errorFromReply(resp)
}

func (a *apiGateway) get(ctx context.Context, taskID string) (*backend.Response, error) {
	u := a.baseURL.JoinPath("v2", a.project, "apigw", "instances", a.instance, "async-tasks", taskID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, backend.Errorf(backend.KindTerminal, "cannot build the request for task %q: %v", taskID, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Auth-Token", a.token)
	return a.client.Do(ctx, req)
}
