// Package zstack polls asynchronous API jobs of ZStack Cloud. Completion and result come from the API job,
// GET /zstack/v1/api-jobs/{apiId}; while the job runs, progress, step text and task name come from
// GET /zstack/v1/task-progresses/{apiId} ("Get Task Progress", GetTaskProgress). Requests carry
// "Authorization: OAuth <session uuid>", the session coming from PUT /zstack/v1/accounts/login
// (LogInByAccount, password as hex SHA-512) or, as given, from a sessionID credential.
package zstack

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// checkAPIID is the job Check asks the progress of: an id no API call can have, so the documented answer is
// 200 {"inventories": []}, which proves the management node answers and accepts the session.
const checkAPIID = "00000000000000000000000000000000"

type zstack struct {
	baseURL *url.URL
	client  *backend.Client
	session *backend.Session[string]
	// fixed is true for a sessionID credential (backend.NewFixedSession, never resent): there is nothing to
	// log in with when ZStack refuses it, so explain says what to do.
	fixed bool
	// accountName and password are the login credentials; empty for a sessionID.
	accountName string
	password    string
}

// New builds a ZStack backend from a Secret holding accountName + password (session login) or sessionID. When
// both are present the login is used, since it can renew an expired session.
func New(cfg backend.Config) (backend.Backend, error) {
	base, err := backend.BaseURL("spec.url", cfg.Spec.URL)
	if err != nil {
		return nil, err
	}
	// The documented paths start with /zstack/v1; a URL that already ends in it is taken as the base too.
	base.Path = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base.Path, "/"), "/zstack/v1"), "/zstack")
	base.RawPath = ""
	z := &zstack{baseURL: base, client: cfg.Client}
	switch {
	case cfg.Credentials.Has("accountName", "password"):
		z.accountName = cfg.Credentials.Get("accountName")
		z.password = cfg.Credentials.Get("password")
		// ZStack's session lifetime is configurable and the login answer's expiredDate is a locale-dependent
		// date text, so the session is used until ZStack refuses it (ID.1001) rather than timed.
		z.session = backend.NewSession(z.login, 0, cfg.OnLogin).RetryRefusedLoginsAfter(cfg.FirstLoginRetry)
	case cfg.Credentials.Has("sessionID"):
		z.fixed = true
		z.session = backend.NewFixedSession(cfg.Credentials.Get("sessionID"))
	default:
		return nil, backend.MissingCredentials([]string{"accountName", "password"}, []string{"sessionID"})
	}
	return z, nil
}

func (z *zstack) Poll(ctx context.Context, taskID string) (backend.Observation, error) {
	resp, err := z.get(ctx, "api-jobs", taskID)
	if err != nil {
		return backend.Observation{}, z.explain(err)
	}
	obs, err := parseJobReply(resp)
	if err != nil || obs.Phase != v1alpha1.TaskPhaseRunning {
		return obs, z.explain(err)
	}
	resp, err = z.get(ctx, "task-progresses", taskID)
	if err != nil {
		return backend.Observation{}, z.explain(err)
	}
	report, err := parseProgressReply(resp)
	if err != nil {
		// The job runs but its progress cannot be read: report the failure rather than an observation without
		// progress, so that the task keeps its last progress instead of flapping.
		return backend.Observation{}, z.explain(err)
	}
	report.applyTo(&obs)
	return obs, nil
}

func (z *zstack) Check(ctx context.Context) error {
	resp, err := z.get(ctx, "task-progresses", checkAPIID)
	if err != nil {
		return z.explain(err)
	}
	_, err = parseProgressReply(resp)
	return z.explain(err)
}

// explain adds what to do to an authentication failure of a sessionID credential, which the operator cannot
// renew.
func (z *zstack) explain(err error) error {
	if e, ok := backend.AsError(err); ok && z.fixed && e.Kind == backend.KindAuthentication {
		return backend.Errorf(backend.KindAuthentication, "%s; the sessionID in the credentials Secret is expired or invalid: replace it, or give accountName and password instead", e.Message)
	}
	return err
}

// get sends GET /zstack/v1/{collection}/{id} with the session, logging in again once when ZStack says the
// session expired.
//
// ZStack documents apiId as a String (its examples are 32 hex digits, and a caller may choose it with
// X-Job-UUID), so only what backend.PathSegment refuses is refused.
func (z *zstack) get(ctx context.Context, collection, id string) (*backend.Response, error) {
	u, err := backend.TaskURL(z.baseURL, id, "zstack", "v1", collection)
	if err != nil {
		return nil, err
	}
	if collection == "task-progresses" {
		// all=false: the latest record and its parents, root first, as the documentation's example asks.
		u.RawQuery = "all=false"
	}
	return z.session.Do(ctx, func(session string) (*backend.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, backend.Errorf(backend.KindTerminal, "cannot build the request for API job %q: %v", id, err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "OAuth "+session)
		return z.client.Do(ctx, req)
	}, sessionExpired)
}

// login is PUT /zstack/v1/accounts/login (LogInByAccount); ZStack takes the password as its hex SHA-512.
func (z *zstack) login(ctx context.Context) (string, time.Time, error) {
	sum := sha512.Sum512([]byte(z.password))
	body, err := json.Marshal(map[string]any{"logInByAccount": map[string]string{
		"accountName": z.accountName,
		"password":    hex.EncodeToString(sum[:]),
	}})
	if err != nil {
		return "", time.Time{}, backend.Errorf(backend.KindInvalidConfig, "cannot encode the login request: %v", err)
	}
	u := z.baseURL.JoinPath("zstack", "v1", "accounts", "login")
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), bytes.NewReader(body))
	if err != nil {
		return "", time.Time{}, backend.Errorf(backend.KindInvalidConfig, "cannot build the login request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	req.Header.Set("Accept", "application/json")
	resp, err := z.client.Do(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	session, err := parseLoginReply(resp, z.accountName)
	return session, time.Time{}, err
}
