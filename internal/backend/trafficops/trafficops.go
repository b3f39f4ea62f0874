// Package trafficops polls asynchronous jobs of Apache Traffic Control's Traffic Ops (API 4.1 and later, 5.x):
// GET /api/{version}/async_status/{id} ("async_status/{{id}}"), with the session cookies of
// POST /api/{version}/user/login (username and password) or POST /api/{version}/user/login/token (a token).
package trafficops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// defaultAPIVersion is the version the CRD defaults spec.trafficOps.apiVersion to.
const defaultAPIVersion = "5.0"

// apiVersionPattern is the CRD's pattern, checked again for objects written before it existed.
var apiVersionPattern = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// taskIDPattern: Traffic Ops job IDs are integers (async_status/{{id}}: "The integral, unique identifier").
// Checking before anything is sent gives a clear message, and keeps anything that is not a plain path segment
// out of the request path.
var taskIDPattern = regexp.MustCompile(`^[0-9]+$`)

type trafficOps struct {
	base    *url.URL
	version string
	client  *backend.Client
	// login names the configured login for messages: `login as user "admin"` or `token login`.
	login   string
	session *backend.Session[*cookies]
	// logins counts the session's logins, for Check.
	logins *backend.LoginCounter
}

// New builds a Traffic Ops backend from a Secret holding username + password (cookie login) or token (token
// login). When both sets are present, username + password is used.
func New(cfg backend.Config) (backend.Backend, error) {
	base, err := backend.BaseURL("spec.url", cfg.Spec.URL)
	if err != nil {
		return nil, err
	}
	version := defaultAPIVersion
	if cfg.Spec.TrafficOps != nil && cfg.Spec.TrafficOps.APIVersion != "" {
		version = cfg.Spec.TrafficOps.APIVersion
	}
	if !apiVersionPattern.MatchString(version) {
		return nil, backend.Errorf(backend.KindInvalidConfig, "spec.trafficOps.apiVersion %q is not a version like \"5.0\"", version)
	}
	t := &trafficOps{base: base, version: version, client: cfg.Client, logins: backend.NewLoginCounter(cfg.OnLogin)}

	var path string
	var body any
	switch {
	case cfg.Credentials.Has("username", "password"):
		username := cfg.Credentials.Get("username")
		path, body = "login", map[string]string{"u": username, "p": cfg.Credentials.Get("password")}
		t.login = fmt.Sprintf("login as user %q", username)
	case cfg.Credentials.Has("token"):
		path, body = "login/token", map[string]string{"t": cfg.Credentials.Get("token")}
		t.login = "token login"
	default:
		return nil, backend.MissingCredentials([]string{"username", "password"}, []string{"token"})
	}
	loginBody, err := json.Marshal(body)
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "cannot encode the login request: %v", err)
	}
	loginURL := t.base.JoinPath("api", t.version, "user", path).String()
	t.session = backend.NewSession(func(ctx context.Context) (*cookies, time.Time, error) {
		return t.doLogin(ctx, loginURL, loginBody)
	}, 0, t.logins.Count).RetryRefusedLoginsAfter(cfg.FirstLoginRetry)
	return t, nil
}

func (t *trafficOps) Poll(ctx context.Context, taskID string) (backend.Observation, error) {
	if !taskIDPattern.MatchString(taskID) {
		return backend.Observation{}, backend.Errorf(backend.KindTerminal,
			"Traffic Ops job IDs are integers; task ID %q is not", taskID)
	}
	taskURL, err := backend.TaskURL(t.base, taskID, "api", t.version, "async_status")
	if err != nil {
		return backend.Observation{}, err
	}
	u := taskURL.String()
	// Only 401 means the session ended; 403 is a missing permission (ASYNC-STATUS:READ) that a new login
	// would not cure.
	resp, err := t.session.Do(ctx, func(c *cookies) (*backend.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, backend.Errorf(backend.KindTerminal, "cannot build the request for task %q: %v", taskID, err)
		}
		req.Header.Set("Accept", "application/json")
		c.addTo(req)
		resp, err := t.client.Do(ctx, req)
		if err == nil && resp.StatusCode == http.StatusOK {
			c.refresh(resp.Header)
		}
		return resp, err
	}, backend.Unauthorized)
	if err != nil {
		return backend.Observation{}, err
	}
	return parseStatusReply(resp)
}

// Check logs in anew: that proves the URL, the API version and the credentials.
func (t *trafficOps) Check(ctx context.Context) error {
	return backend.LogInAnew(ctx, t.session, t.logins)
}

// doLogin posts the credentials and keeps the cookies of the answer. Its errors name the login, never the
// credential values.
func (t *trafficOps) doLogin(ctx context.Context, loginURL string, body []byte) (*cookies, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, loginURL, bytes.NewReader(body))
	if err != nil {
		return nil, time.Time{}, backend.Errorf(backend.KindInvalidConfig, "cannot build the Traffic Ops login request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := t.client.Do(ctx, req)
	if err != nil {
		return nil, time.Time{}, err
	}
	c, err := parseLoginReply(resp, t.login)
	// The session's lifetime slides with every answer (see cookies.refresh), so no expiry is given: a 401
	// ends the session.
	return c, time.Time{}, err
}

// cookies are a Traffic Ops session: mojolicious, and access_token on newer releases. Every authenticated
// answer re-issues them with a new lifetime; keeping the newest saves a login when the first one would have
// run out.
type cookies struct {
	mu     sync.Mutex
	values map[string]string
}

func newCookies(set []*http.Cookie) *cookies {
	c := &cookies{values: map[string]string{}}
	for _, k := range set {
		if k.Value != "" && k.MaxAge >= 0 {
			c.values[k.Name] = k.Value
		}
	}
	return c
}

func (c *cookies) addTo(req *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, value := range c.values {
		req.AddCookie(&http.Cookie{Name: name, Value: value}) //nolint:gosec // G124: a request cookie; Secure and HttpOnly are attributes of a server's Set-Cookie
	}
}

// refresh takes the re-issued values of the session's own cookies from a successful answer.
func (c *cookies) refresh(h http.Header) {
	set := (&http.Response{Header: h}).Cookies()
	if len(set) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range set {
		if _, ours := c.values[k.Name]; ours && k.Value != "" && k.MaxAge >= 0 {
			c.values[k.Name] = k.Value
		}
	}
}

func (c *cookies) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}
