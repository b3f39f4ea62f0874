// Package networkinsight polls bulk application save tasks of VMware Network Insight (vRealize Network
// Insight, Aria Operations for Networks, VCF Operations for Networks): GET /api/ni/groups/task/progress/{requestId}
// ("Get Bulk Application Task Progress"). It authenticates with a token from POST /api/ni/auth/token (LOCAL or
// LDAP domain), or with a token from the Secret used as it is, sent as "Authorization: NetworkInsight <token>".
package networkinsight

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

const (
	loginPath    = "/api/ni/auth/token"
	progressPath = "/api/ni/groups/task/progress/"

	// checkRequestID is polled by Check: shaped like a real request ID but never issued, so that the documented
	// 404 proves the appliance answers and accepts the token without touching a real task.
	checkRequestID = "TASK_PROGRESS_asynctask-operator.READINESS_CHECK.0.0"

	// refreshBefore renews a token this long before its stated expiry (tokens last hours), so that a poll
	// does not race the expiry.
	refreshBefore = time.Minute
)

type networkInsight struct {
	baseURL string
	client  *backend.Client
	// session logs in again once on a 401; a fixed token (backend.NewFixedSession) is never resent.
	session *backend.Session[string]
}

// loginRequest is the body of POST /api/ni/auth/token.
type loginRequest struct {
	Username string      `json:"username"`
	Password string      `json:"password"`
	Domain   loginDomain `json:"domain"`
}

type loginDomain struct {
	DomainType string `json:"domain_type"`
	Value      string `json:"value,omitempty"`
}

// New builds a Network Insight backend from a Secret holding username + password (token login) or token.
// With both, the login is used, since it can be renewed when the token expires.
func New(cfg backend.Config) (backend.Backend, error) {
	base, err := backend.BaseURL("spec.url", cfg.Spec.URL)
	if err != nil {
		return nil, err
	}
	n := &networkInsight{baseURL: base.String(), client: cfg.Client}
	switch {
	case cfg.Credentials.Has("username", "password"):
		domain, err := domainOf(cfg.Spec.NetworkInsight)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(loginRequest{
			Username: cfg.Credentials.Get("username"),
			Password: cfg.Credentials.Get("password"),
			Domain:   domain,
		})
		if err != nil {
			return nil, backend.Errorf(backend.KindInvalidConfig, "cannot encode the login request")
		}
		n.session = backend.NewSession(n.login(body), refreshBefore, cfg.OnLogin).RetryRefusedLoginsAfter(cfg.FirstLoginRetry)
	case cfg.Credentials.Has("token"):
		n.session = backend.NewFixedSession(cfg.Credentials.Get("token"))
	default:
		return nil, backend.MissingCredentials([]string{"username", "password"}, []string{"token"})
	}
	return n, nil
}

// domainOf returns the login domain of spec.networkInsight; LOCAL when it is not set.
func domainOf(settings *v1alpha1.NetworkInsightSettings) (loginDomain, error) {
	if settings == nil || settings.DomainType == "" || settings.DomainType == v1alpha1.NetworkInsightDomainLocal {
		return loginDomain{DomainType: string(v1alpha1.NetworkInsightDomainLocal)}, nil
	}
	if settings.DomainType != v1alpha1.NetworkInsightDomainLDAP {
		return loginDomain{}, backend.Errorf(backend.KindInvalidConfig,
			"spec.networkInsight.domainType %q is not LOCAL or LDAP", settings.DomainType)
	}
	if strings.TrimSpace(settings.Domain) == "" {
		return loginDomain{}, backend.Errorf(backend.KindInvalidConfig,
			"spec.networkInsight.domain is required when domainType is LDAP")
	}
	return loginDomain{DomainType: string(v1alpha1.NetworkInsightDomainLDAP), Value: settings.Domain}, nil
}

func (n *networkInsight) Poll(ctx context.Context, taskID string) (backend.Observation, error) {
	resp, err := n.get(ctx, taskID)
	if err != nil {
		return backend.Observation{}, err
	}
	return parseProgressReply(resp)
}

// Check logs in when the backend has login credentials (a refusal is an authentication error) and polls a
// request ID that cannot exist: Network Insight's documented 404 shows the token is accepted.
func (n *networkInsight) Check(ctx context.Context) error {
	resp, err := n.get(ctx, checkRequestID)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	err = errorFromReply(resp)
	if backend.KindOf(err) == backend.KindNotFound {
		return nil
	}
	return err
}

// get polls one request ID with the session, logging in again once when the token has expired.
//
// The reference types requestId as a string and documents no pattern; request IDs contain dots, which are
// data inside a segment. So only what backend.PathSegment refuses is refused.
func (n *networkInsight) get(ctx context.Context, taskID string) (*backend.Response, error) {
	segment, err := backend.PathSegment("taskID", taskID)
	if err != nil {
		return nil, err
	}
	target := n.baseURL + progressPath + segment
	return n.session.Do(ctx, func(token string) (*backend.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, backend.Errorf(backend.KindTerminal, "cannot build the request for task %q: %v", taskID, err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "NetworkInsight "+token)
		return n.client.Do(ctx, req)
	}, backend.Unauthorized)
}

// login returns the LoginFunc that posts the prepared login body. The body holds the password, so it is
// built once in New and never printed.
func (n *networkInsight) login(body []byte) backend.LoginFunc[string] {
	return func(ctx context.Context) (string, time.Time, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.baseURL+loginPath, bytes.NewReader(body))
		if err != nil {
			return "", time.Time{}, backend.Errorf(backend.KindInvalidConfig, "cannot build the login request: %v", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := n.client.Do(ctx, req)
		if be, ok := backend.AsError(err); ok {
			return "", time.Time{}, &backend.Error{Kind: be.Kind, RetryAfter: be.RetryAfter,
				Message: "Network Insight login: " + be.Message}
		} else if err != nil {
			return "", time.Time{}, err
		}
		return parseLoginReply(resp, time.Now())
	}
}
