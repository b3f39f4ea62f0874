package apigateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/apigateway/aksk"
)

// tokenRefreshBefore renews an IAM token this long before its expires_at (tokens last 24 hours).
const tokenRefreshBefore = 15 * time.Minute

// tokenSender sends requests with X-Auth-Token: the token of an IAM session, renewed once when the gateway
// answers 401, or a fixed token (backend.NewFixedSession), which Session.Do never resends.
func tokenSender(client *backend.Client, session *backend.Session[string]) sender {
	return func(ctx context.Context, build func() (*http.Request, error), _ []byte) (*backend.Response, error) {
		return session.Do(ctx, func(token string) (*backend.Response, error) {
			req, err := build()
			if err != nil {
				return nil, err
			}
			req.Header.Set("X-Auth-Token", token)
			return client.Do(ctx, req)
		}, backend.Unauthorized)
	}
}

// signingSender signs every request with the access key (SDK-HMAC-SHA256): its method, path, headers (all
// but Content-Type, which the SDK leaves unsigned) and the SHA-256 of its body. Like the SDK signer whose
// golden vectors package aksk reproduces, the query is not part of the signature (see aksk.canonicalQuery).
func signingSender(client *backend.Client, projectID, accessKey, secretKey string) sender {
	return func(ctx context.Context, build func() (*http.Request, error), body []byte) (*backend.Response, error) {
		req, err := build()
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Project-Id", projectID)
		aksk.Sign(req, body, accessKey, secretKey, time.Now())
		return client.Do(ctx, req)
	}
}

// passwordLogin obtains IAM user tokens scoped to the backend's project.
type passwordLogin struct {
	client   *backend.Client
	tokenURL string
	body     []byte
}

// iamAuthRequest is the documented body of POST /v3/auth/tokens for password authentication.
type iamAuthRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope struct {
			Project struct {
				ID string `json:"id"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

// iamTokenReply is the part of the login answer the operator reads.
type iamTokenReply struct {
	Token struct {
		ExpiresAt backend.BoundedString `json:"expires_at"`
	} `json:"token"`
}

// iamErrorReply is the part of an IAM error body the operator quotes.
type iamErrorReply struct {
	Error struct {
		Message backend.BoundedString `json:"message"`
	} `json:"error"`
}

func newPasswordLogin(cfg backend.Config, apigURL *url.URL) (*passwordLogin, error) {
	settings := cfg.Spec.APIGateway
	if settings.DomainName == "" {
		return nil, backend.Errorf(backend.KindInvalidConfig, "spec.apiGateway.domainName (the IAM account name) is required for password login")
	}
	iamURL := settings.IAMURL
	if iamURL == "" {
		derived, ok := iamURLFor(apigURL)
		if !ok {
			return nil, backend.Errorf(backend.KindInvalidConfig, "spec.apiGateway.iamURL is required for password login when spec.url is not an apig.<region> endpoint")
		}
		iamURL = derived
	}
	iam, err := backend.BaseURL("spec.apiGateway.iamURL", iamURL)
	if err != nil {
		return nil, err
	}
	var body iamAuthRequest
	body.Auth.Identity.Methods = []string{"password"}
	body.Auth.Identity.Password.User.Name = cfg.Credentials.Get("username")
	body.Auth.Identity.Password.User.Password = cfg.Credentials.Get("password")
	body.Auth.Identity.Password.User.Domain.Name = settings.DomainName
	body.Auth.Scope.Project.ID = settings.ProjectID
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "cannot encode the IAM login request")
	}
	return &passwordLogin{client: cfg.Client, tokenURL: iam.JoinPath("v3", "auth", "tokens").String(), body: raw}, nil
}

// iamURLFor derives the IAM endpoint of a region from its gateway endpoint: apig.<region>.<domain> becomes
// iam.<region>.<domain>, as on Huawei Cloud and Open Telekom Cloud.
func iamURLFor(apigURL *url.URL) (string, bool) {
	host := apigURL.Hostname()
	if !strings.HasPrefix(host, "apig.") {
		return "", false
	}
	return "https://iam." + strings.TrimPrefix(host, "apig."), true
}

func (p *passwordLogin) login(ctx context.Context) (string, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.tokenURL, bytes.NewReader(p.body))
	if err != nil {
		return "", time.Time{}, backend.Errorf(backend.KindInvalidConfig, "cannot build the IAM login request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	resp, err := p.client.Do(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	token := resp.Header.Get("X-Subject-Token")
	if resp.StatusCode != http.StatusCreated || token == "" {
		return "", time.Time{}, iamLoginError(resp)
	}
	return token, tokenExpiry(resp), nil
}

// tokenExpiry reads the expiry of an IAM token; it is optional: without it, the token is renewed on 401.
func tokenExpiry(resp *backend.Response) time.Time {
	var reply iamTokenReply
	_ = json.Unmarshal(resp.Body, &reply)
	expiry, _ := time.Parse(time.RFC3339Nano, string(reply.Token.ExpiresAt))
	return expiry
}

// iamLoginError classifies a refused IAM login, quoting IAM's message.
func iamLoginError(resp *backend.Response) error {
	var e iamErrorReply
	msg := ""
	if json.Unmarshal(resp.Body, &e) == nil && e.Error.Message != "" {
		msg = string(e.Error.Message)
	}
	err := backend.ErrorForStatus(resp, msg)
	if be, ok := backend.AsError(err); ok {
		if resp.StatusCode == http.StatusCreated {
			be.Kind, be.Message = backend.KindTransient, "IAM login answered 201 without an X-Subject-Token header"
		} else {
			be.Message = fmt.Sprintf("IAM login failed: %s", be.Message)
		}
	}
	return err
}
