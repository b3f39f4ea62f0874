package httpcel

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/google/cel-go/common/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// authenticator attaches credentials to requests: fixed ones from the Secret, or a login session.
type authenticator struct {
	client *backend.Client
	// attach adds a fixed credential (Bearer, Basic, Header); nil for None and Login.
	attach func(req *http.Request)

	// With Login: the session, how its token is attached, and when an answer says it expired.
	session     *backend.Session[string]
	tokenHeader string
	tokenFormat string
	tokenCookie string
	expired     *expression
	logins      *backend.LoginCounter
	// secrets are the credential values, blanked out of any message a login produces.
	secrets []string
}

const (
	defaultTokenHeader = "Authorization"
	defaultTokenFormat = "Bearer {token}" //nolint:gosec // G101: a header template, no credential
)

// authMethodOf returns the configured method, or the one the Secret's keys make: Login when a login is
// given, then token, username + password, headerName + headerValue; None without a Secret.
func authMethodOf(cfg backend.Config) v1alpha1.HTTPAuthMethod {
	auth := cfg.Spec.HTTP.Auth
	if auth != nil && auth.Method != "" {
		return auth.Method
	}
	creds := cfg.Credentials
	switch {
	case auth != nil && auth.Login != nil:
		return v1alpha1.HTTPAuthLogin
	case creds.Has("token"):
		return v1alpha1.HTTPAuthBearer
	case creds.Has("username", "password"):
		return v1alpha1.HTTPAuthBasic
	case creds.Has("headerName", "headerValue"):
		return v1alpha1.HTTPAuthHeader
	case cfg.Spec.CredentialsSecretRef == nil:
		return v1alpha1.HTTPAuthNone
	}
	return ""
}

func newAuthenticator(cfg backend.Config, base string) (*authenticator, error) {
	a := &authenticator{client: cfg.Client, tokenHeader: defaultTokenHeader, tokenFormat: defaultTokenFormat}
	if auth := cfg.Spec.HTTP.Auth; auth != nil {
		if auth.TokenHeader != "" {
			a.tokenHeader = auth.TokenHeader
		}
		if auth.TokenFormat != "" {
			a.tokenFormat = auth.TokenFormat
		}
		a.tokenCookie = auth.TokenCookie
	}
	if !strings.Contains(a.tokenFormat, "{token}") {
		return nil, backend.Errorf(backend.KindInvalidConfig, "spec.http.auth.tokenFormat must contain {token}")
	}
	creds := cfg.Credentials
	switch method := authMethodOf(cfg); method {
	case v1alpha1.HTTPAuthNone:
	case v1alpha1.HTTPAuthBearer:
		if !creds.Has("token") {
			return nil, backend.MissingCredentials([]string{"token"})
		}
		value := strings.ReplaceAll(a.tokenFormat, "{token}", creds.Get("token"))
		a.attach = func(req *http.Request) { req.Header.Set(a.tokenHeader, value) }
	case v1alpha1.HTTPAuthBasic:
		if !creds.Has("username", "password") {
			return nil, backend.MissingCredentials([]string{"username", "password"})
		}
		value := basicAuth(creds.Get("username"), creds.Get("password"))
		a.attach = func(req *http.Request) { req.Header.Set("Authorization", value) }
	case v1alpha1.HTTPAuthHeader:
		if !creds.Has("headerName", "headerValue") {
			return nil, backend.MissingCredentials([]string{"headerName", "headerValue"})
		}
		name, value := creds.Get("headerName"), creds.Get("headerValue")
		if !validHeaderName(name) {
			return nil, backend.Errorf(backend.KindInvalidConfig, "the headerName in the credentials Secret is not a valid HTTP header name")
		}
		a.attach = func(req *http.Request) { req.Header.Set(name, value) }
	case v1alpha1.HTTPAuthLogin:
		if err := a.setUpLogin(cfg, base); err != nil {
			return nil, err
		}
	default:
		return nil, backend.MissingCredentials([]string{"token"}, []string{"username", "password"}, []string{"headerName", "headerValue"})
	}
	return a, nil
}

// setUpLogin compiles the login's expressions and evaluates its body once: the credentials do not change
// for the life of the backend (a new Secret builds a new one).
func (a *authenticator) setUpLogin(cfg backend.Config, base string) error {
	login := cfg.Spec.HTTP.Auth.Login
	if login == nil {
		return backend.Errorf(backend.KindInvalidConfig, "spec.http.auth.method Login needs spec.http.auth.login")
	}
	for _, v := range cfg.Credentials {
		if len(v) > 0 {
			a.secrets = append(a.secrets, string(v))
		}
	}
	method := string(login.Method)
	switch method {
	case "":
		method = http.MethodPost
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		return backend.Errorf(backend.KindInvalidConfig, "field %smethod %q is not GET, POST or PUT", fieldLogin, login.Method)
	}
	path, query, err := expandURL(login.Path, "", cfg.Spec.HTTP.Parameters)
	if err != nil {
		return backend.Errorf(backend.KindInvalidConfig, "field %spath: %v", fieldLogin, err)
	}
	target := base + path
	if query != "" {
		target += "?" + query
	}
	token, err := compile(answerEnv, fieldLogin+"token", login.Token, yieldsString)
	if err != nil {
		return err
	}
	if token == nil {
		return backend.Errorf(backend.KindInvalidConfig, "field %stoken is required", fieldLogin)
	}
	expiredSrc := login.Expired
	if strings.TrimSpace(expiredSrc) == "" {
		expiredSrc = "response.status == 401"
	}
	if a.expired, err = compile(answerEnv, fieldLogin+"expired", expiredSrc, yieldsBool); err != nil {
		return err
	}
	body, err := a.loginBody(cfg, login.Body)
	if err != nil {
		return err
	}
	a.logins = backend.NewLoginCounter(cfg.OnLogin)
	a.session = backend.NewSession(func(ctx context.Context) (string, time.Time, error) {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
		if err != nil {
			return "", time.Time{}, backend.Errorf(backend.KindInvalidConfig, "cannot build the login request: %v", err)
		}
		req.Header.Set("Accept", "application/json")
		if len(body) > 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range login.Headers {
			req.Header.Set(k, v)
		}
		resp, err := a.client.Do(ctx, req)
		if err == nil {
			err = checkLoginBodyShape(resp)
		}
		if err != nil {
			return "", time.Time{}, a.loginError(err)
		}
		return a.readLogin(ctx, resp, token)
	}, 0, a.logins.Count).RetryRefusedLoginsAfter(cfg.FirstLoginRetry)
	return nil
}

// loginBody evaluates the login body expression: a map or list is sent as JSON, a string as it is.
func (a *authenticator) loginBody(cfg backend.Config, src string) ([]byte, error) {
	x, err := compile(loginEnv, fieldLogin+"body", src, yieldsAny)
	if err != nil || x == nil {
		return nil, err
	}
	creds := make(map[string]string, len(cfg.Credentials))
	for k, v := range cfg.Credentials {
		creds[k] = string(v)
	}
	params := cfg.Spec.HTTP.Parameters
	if params == nil {
		params = map[string]string{}
	}
	v, err := x.eval(context.Background(), map[string]any{varCredentials: creds, varParameters: params})
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "%s", a.redact(err.Error()))
	}
	switch t := v.(type) {
	case types.String:
		return []byte(t), nil
	}
	if isNull(v) {
		return nil, nil
	}
	native, err := v.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "CEL expression %sbody yields a %s, which cannot be written as JSON", fieldLogin, v.Type().TypeName())
	}
	b, err := protojson.Marshal(native.(*structpb.Value))
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "CEL expression %sbody cannot be written as JSON", fieldLogin)
	}
	return compactJSON(b), nil
}

// readLogin takes the token from a login answer. A refusal (4xx) is an authentication error; 429 and 5xx
// may pass.
func (a *authenticator) readLogin(ctx context.Context, resp *backend.Response, token *expression) (string, time.Time, error) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		text := a.quoteRefusal(resp.Body)
		if text != "" {
			text = ": " + text
		}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return "", time.Time{}, backend.Errorf(backend.KindAuthentication, "the login refused the credentials (HTTP %d)%s", resp.StatusCode, text)
		}
		return "", time.Time{}, &backend.Error{Kind: backend.KindTransient, RetryAfter: resp.RetryAfter,
			Message: fmt.Sprintf("login: vendor answered HTTP %d%s", resp.StatusCode, text)}
	}
	value, err := token.evalString(ctx, answerVars(resp, nil, "", nil))
	if err != nil {
		return "", time.Time{}, backend.Errorf(backend.KindAuthentication, "the login answered HTTP %d, but %s", resp.StatusCode, a.redact(err.Error()))
	}
	if strings.TrimSpace(value) == "" {
		return "", time.Time{}, backend.Errorf(backend.KindAuthentication, "the login answered HTTP %d, but %stoken yielded no token", resp.StatusCode, fieldLogin)
	}
	return strings.Clone(value), time.Time{}, nil // a copy: the token may be the body's own bytes
}

func (a *authenticator) loginError(err error) error {
	if be, ok := backend.AsError(err); ok {
		return &backend.Error{Kind: be.Kind, RetryAfter: be.RetryAfter, Message: "login: " + a.redact(be.Message)}
	}
	return err
}

// quoteRefusal quotes the start of a refused login's answer. The credential values are blanked out of the
// whole body first: quoting first could cut one in two, or fold the white space in one, and leave what no
// longer matches in the message.
func (a *authenticator) quoteRefusal(body []byte) string {
	for _, s := range a.secrets {
		if bytes.Contains(body, []byte(s)) {
			body = bytes.ReplaceAll(body, []byte(s), []byte("[redacted]"))
		}
	}
	return backend.Snippet(body)
}

// redact blanks the credential values out of a message.
func (a *authenticator) redact(msg string) string {
	for _, s := range a.secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return msg
}

// do sends the request build makes with the credentials. With a login, an answer that expired says is the
// end of the session: it logs in again once and resends; if the fresh session is refused too, that is an
// authentication error.
func (a *authenticator) do(ctx context.Context, build func() (*http.Request, error)) (*backend.Response, error) {
	if a.session == nil {
		req, err := build()
		if err != nil {
			return nil, err
		}
		if a.attach != nil {
			a.attach(req)
		}
		return a.fetch(ctx, req)
	}
	expired := func(resp *backend.Response) bool {
		yes, err := a.expired.evalBool(ctx, answerVars(resp, nil, "", nil), false)
		return err == nil && yes
	}
	resp, err := a.session.Do(ctx, func(token string) (*backend.Response, error) {
		req, err := build()
		if err != nil {
			return nil, err
		}
		if a.tokenCookie != "" {
			req.AddCookie(&http.Cookie{Name: a.tokenCookie, Value: token}) //nolint:gosec // G124: a request cookie; Secure and HttpOnly are attributes of a server's Set-Cookie
		} else {
			req.Header.Set(a.tokenHeader, strings.ReplaceAll(a.tokenFormat, "{token}", token))
		}
		return a.fetch(ctx, req)
	}, expired)
	if err != nil {
		return nil, err
	}
	if expired(resp) {
		return nil, &backend.Error{Kind: backend.KindAuthentication, RetryAfter: resp.RetryAfter,
			Message: fmt.Sprintf("the vendor refused the session of a fresh login (HTTP %d, %sexpired is true)", resp.StatusCode, fieldLogin)}
	}
	return resp, nil
}

// fetch sends a request and refuses an answer whose JSON body is over the shape limits, before any
// expression decodes it.
func (a *authenticator) fetch(ctx context.Context, req *http.Request) (*backend.Response, error) {
	resp, err := a.client.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := checkBodyShape(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// checkLogin logs in anew, so that Ready says the vendor accepts the credentials now.
func (a *authenticator) checkLogin(ctx context.Context) error {
	return backend.LogInAnew(ctx, a.session, a.logins)
}

// validHeaderName reports whether name is an HTTP header field name (an RFC 9110 token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= 0x20 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
