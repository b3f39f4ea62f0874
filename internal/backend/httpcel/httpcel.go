// Package httpcel is the generic HTTP backend (type HTTP): it polls any JSON task-status API that a TaskBackend
// describes in spec.http, with no vendor code. One request (and an optional follow-up) asks about a task; its
// path and body are templates with {taskID} and {parameter} placeholders; Common Expression Language (CEL,
// github.com/google/cel-go) expressions read the answer into an Observation. Requests authenticate with the
// credentials Secret (Bearer token, Basic, a header) or a login request whose answer yields a session token,
// renewed once when an answer says it expired.
//
// Every expression is compiled and type-checked in New, so a mistake is a KindInvalidConfig error with its
// position before any task is polled; evaluation has a cost limit, and its errors are KindTransient errors
// that name the expression.
package httpcel

import (
	"context"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// checkTaskID is asked about by Check when there is no login to prove the credentials: a task ID no vendor
// issues, so that any answer short of a refusal shows the endpoint answers and accepts the credentials.
const checkTaskID = "asynctask-operator-readiness-check"

// Spec field paths, for messages.
const (
	fieldExpressions = "spec.http.expressions."
	fieldLogin       = "spec.http.auth.login."
	fieldFollowUp    = "spec.http.followUp."
)

type httpBackend struct {
	// base is spec.url without a trailing slash; templates are appended to it.
	base     string
	client   *backend.Client
	settings v1alpha1.HTTPSettings
	method   string

	accept, errorMessage, phase, progress, message, vendorStatus, taskName, result, startTime, completionTime *expression
	followUpWhen                                                                                              *expression

	// escapeBodyValue escapes a placeholder's value for the body's Content-Type.
	escapeBodyValue func(what, value string) (string, error)

	auth *authenticator
}

// New builds a generic HTTP backend from spec.http. Every expression is compiled here: a mistake is a
// KindInvalidConfig error that names the field, the line and column, and the CEL message.
func New(cfg backend.Config) (backend.Backend, error) {
	settings := cfg.Spec.HTTP
	if settings == nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "field spec.http with path and expressions.phase is required for type HTTP")
	}
	base, err := backend.BaseURL("spec.url", cfg.Spec.URL)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(settings.Path, "/") {
		return nil, backend.Errorf(backend.KindInvalidConfig, "field spec.http.path must start with /")
	}
	h := &httpBackend{
		base:     base.String(),
		client:   cfg.Client,
		settings: *settings,
		method:   string(settings.Method),
	}
	switch h.method {
	case "":
		h.method = http.MethodGet
	case http.MethodGet, http.MethodPost:
	default:
		return nil, backend.Errorf(backend.KindInvalidConfig, "field spec.http.method %q is not GET or POST", settings.Method)
	}
	if settings.Body != "" && h.method != http.MethodPost {
		return nil, backend.Errorf(backend.KindInvalidConfig, "field spec.http.body is only sent with method POST")
	}
	if err := checkPathTemplate("spec.http.path", settings.Path); err != nil {
		return nil, err
	}
	if h.escapeBodyValue, err = bodyEscaper(settings); err != nil {
		return nil, err
	}
	if strings.TrimSpace(settings.Expressions.Phase) == "" {
		return nil, backend.Errorf(backend.KindInvalidConfig, "field %sphase is required", fieldExpressions)
	}
	x := settings.Expressions
	for _, c := range []struct {
		dst  **expression
		name string
		src  string
		kind outputKind
	}{
		{&h.accept, "accept", x.Accept, yieldsBool},
		{&h.errorMessage, "errorMessage", x.ErrorMessage, yieldsString},
		{&h.phase, "phase", x.Phase, yieldsString},
		{&h.progress, "progress", x.Progress, yieldsNumber},
		{&h.message, "message", x.Message, yieldsString},
		{&h.vendorStatus, "vendorStatus", x.VendorStatus, yieldsString},
		{&h.taskName, "taskName", x.TaskName, yieldsString},
		{&h.result, "result", x.Result, yieldsAny},
		{&h.startTime, "startTime", x.StartTime, yieldsTime},
		{&h.completionTime, "completionTime", x.CompletionTime, yieldsTime},
	} {
		if *c.dst, err = compile(answerEnv, fieldExpressions+c.name, c.src, c.kind); err != nil {
			return nil, err
		}
	}
	if f := settings.FollowUp; f != nil {
		if !strings.HasPrefix(f.Path, "/") {
			return nil, backend.Errorf(backend.KindInvalidConfig, "field %spath must start with /", fieldFollowUp)
		}
		if err := checkPathTemplate(fieldFollowUp+"path", f.Path); err != nil {
			return nil, err
		}
		if h.followUpWhen, err = compile(answerEnv, fieldFollowUp+"when", f.When, yieldsBool); err != nil {
			return nil, err
		}
	}
	if h.auth, err = newAuthenticator(cfg, h.base); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *httpBackend) Poll(ctx context.Context, taskID string) (backend.Observation, error) {
	return h.PollWithParameters(ctx, taskID, nil)
}

// PollWithParameters asks about one task, with the parameters the task fills beside the backend's.
func (h *httpBackend) PollWithParameters(ctx context.Context, taskID string, taskParams map[string]string) (backend.Observation, error) {
	params, err := taskParameters(h.settings.Parameters, taskParams)
	if err != nil {
		return backend.Observation{}, err
	}
	resp, err := h.send(ctx, h.method, h.settings.Path, h.settings.Body, taskID, params)
	if err != nil {
		return backend.Observation{}, err
	}
	vars := answerVars(resp, nil, taskID, params)
	accepted, err := h.accept.evalBool(ctx, vars, resp.StatusCode >= 200 && resp.StatusCode < 300)
	if err != nil {
		return backend.Observation{}, err
	}
	if !accepted {
		return backend.Observation{}, h.refusal(ctx, resp, vars, fieldExpressions+"accept")
	}
	if f := h.settings.FollowUp; f != nil {
		send, err := h.followUpWhen.evalBool(ctx, vars, true)
		if err != nil {
			return backend.Observation{}, err
		}
		if send {
			more, err := h.send(ctx, http.MethodGet, f.Path, "", taskID, params)
			if err != nil {
				return backend.Observation{}, err
			}
			if more.StatusCode < 200 || more.StatusCode > 299 {
				return backend.Observation{}, h.refusal(ctx, more, answerVars(more, nil, taskID, params), "the follow-up request")
			}
			vars = answerVars(resp, more, taskID, params)
		}
	}
	return h.observe(ctx, vars)
}

// observe evaluates the status expressions over an accepted answer.
func (h *httpBackend) observe(ctx context.Context, vars map[string]any) (backend.Observation, error) {
	var obs backend.Observation
	phase, err := h.phase.evalString(ctx, vars)
	if err != nil {
		return obs, err
	}
	switch p := v1alpha1.TaskPhase(phase); p {
	case v1alpha1.TaskPhasePending, v1alpha1.TaskPhaseRunning, v1alpha1.TaskPhaseSucceeded, v1alpha1.TaskPhaseFailed:
		obs.Phase = v1alpha1.TaskPhase(strings.Clone(phase)) // the phase may be the body's own bytes
	default:
		return obs, backend.Errorf(backend.KindTransient, "CEL expression %sphase yielded %q; it must yield one of Pending, Running, Succeeded, Failed", fieldExpressions, backend.OneLine(phase, backend.MaxWordLength))
	}
	if obs.Progress, err = h.progress.evalProgress(ctx, vars); err != nil {
		return obs, err
	}
	for _, s := range []struct {
		x        *expression
		dst      *string
		maxChars int
	}{
		{h.message, &obs.Message, backend.MaxMessageLength},
		{h.vendorStatus, &obs.VendorStatus, backend.MaxWordLength},
		{h.taskName, &obs.TaskName, backend.MaxWordLength},
	} {
		v, err := s.x.evalString(ctx, vars)
		if err != nil {
			return obs, err
		}
		// A copy: the text may be the body's own bytes (see bodyString), which it must not keep alive.
		*s.dst = strings.Clone(backend.OneLine(v, s.maxChars))
	}
	if obs.Result, err = h.result.evalJSON(ctx, vars); err != nil {
		return obs, err
	}
	if obs.StartTime, err = h.startTime.evalTime(ctx, vars); err != nil {
		return obs, err
	}
	if obs.CompletionTime, err = h.completionTime.evalTime(ctx, vars); err != nil {
		return obs, err
	}
	return obs, nil
}

// refusal classifies an answer that is not about the task by its HTTP status, quoting errorMessage's text.
// An errorMessage that cannot be evaluated on this answer is left out: the status says enough.
func (h *httpBackend) refusal(ctx context.Context, resp *backend.Response, vars map[string]any, what string) error {
	vendorText, _ := h.errorMessage.evalString(ctx, vars)
	if resp.StatusCode < 400 {
		return backend.BadBody(resp, "not accepted by "+what)
	}
	return backend.ErrorForStatus(resp, backend.OneLine(vendorText, backend.MaxMessageLength))
}

// send builds and sends one request about a task, with the backend's headers and credentials.
func (h *httpBackend) send(ctx context.Context, method, pathTmpl, bodyTmpl, taskID string, params map[string]string) (*backend.Response, error) {
	target, err := h.url(pathTmpl, taskID, params)
	if err != nil {
		return nil, err
	}
	body := ""
	if bodyTmpl != "" {
		if body, err = expand(bodyTmpl, taskID, params, h.escapeBodyValue); err != nil {
			return nil, backend.Errorf(backend.KindTerminal, "spec.http.body: %v", err)
		}
	}
	build := func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
		if err != nil {
			return nil, backend.Errorf(backend.KindTerminal, "cannot build the request for task %q: %v", taskID, err)
		}
		req.Header.Set("Accept", "application/json")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range h.settings.Headers {
			req.Header.Set(k, v)
		}
		return req, nil
	}
	return h.auth.do(ctx, build)
}

// url expands a path template onto the base URL.
func (h *httpBackend) url(pathTmpl, taskID string, params map[string]string) (string, error) {
	path, query, err := expandURL(pathTmpl, taskID, params)
	if _, refused := backend.AsError(err); refused {
		return "", err // a value backend.PathSegment refused: its message names it
	} else if err != nil {
		return "", backend.Errorf(backend.KindTerminal, "request path: %v", err)
	}
	target := h.base + path
	if query != "" {
		target += "?" + query
	}
	return target, nil
}

// Check logs in when the backend has a login; otherwise it asks about a task that cannot exist, with the
// backend's parameters (any placeholder they leave open gets the same made-up ID), and takes any answer short
// of a refusal of the credentials or a server error as proof.
func (h *httpBackend) Check(ctx context.Context) error {
	if h.auth.session != nil {
		return h.auth.checkLogin(ctx)
	}
	params, _ := taskParameters(h.settings.Parameters, nil) // a task fills nothing, so nothing is refused
	for _, m := range placeholder.FindAllStringSubmatch(h.settings.Path, -1) {
		if _, ok := params[m[1]]; !ok && m[1] != taskIDPlaceholder {
			params[m[1]] = checkTaskID
		}
	}
	for _, m := range placeholder.FindAllStringSubmatch(h.settings.Body, -1) {
		if _, ok := params[m[1]]; !ok && m[1] != taskIDPlaceholder {
			params[m[1]] = checkTaskID
		}
	}
	resp, err := h.send(ctx, h.method, h.settings.Path, h.settings.Body, checkTaskID, params)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden,
		resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return h.refusal(ctx, resp, answerVars(resp, nil, checkTaskID, params), "")
	}
	return nil
}

func headerValue(headers map[string]string, name, def string) string {
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return def
}

// checkPathTemplate refuses a path template whose literal text is not written as it goes on the wire
// (percent-encoded, no "#"): Go escapes such a path anew from its decoded form, which would turn a value's
// %2F back into "/".
func checkPathTemplate(field, tmpl string) error {
	path, _, _ := strings.Cut(tmpl, "?")
	literal := placeholder.ReplaceAllString(path, "x")
	if u, err := url.Parse(literal); err != nil || u.EscapedPath() != literal {
		return backend.Errorf(backend.KindInvalidConfig, "field %s must be written percent-encoded, as it is sent: %q is not", field, path)
	}
	return nil
}

// bodyEscaper returns how placeholder values are escaped in the body: for a JSON string in a JSON body (the
// default), as a form value in an application/x-www-form-urlencoded one. A body of any other Content-Type
// with placeholders is refused, since a value could not be kept from changing its structure.
func bodyEscaper(settings *v1alpha1.HTTPSettings) (func(what, value string) (string, error), error) {
	contentType := headerValue(settings.Headers, "Content-Type", "application/json")
	if isJSON(contentType) {
		return escapeJSONString, nil
	}
	if mediaType, _, err := mime.ParseMediaType(contentType); err == nil && mediaType == "application/x-www-form-urlencoded" {
		return escapeQueryValue, nil
	}
	if placeholder.MatchString(settings.Body) {
		return nil, backend.Errorf(backend.KindInvalidConfig,
			"field spec.http.body has placeholders, but its Content-Type %q is neither JSON nor application/x-www-form-urlencoded, so their values cannot be escaped for it",
			contentType)
	}
	return nil, nil // a body without placeholders is sent as written
}

func isJSON(contentType string) bool {
	ct := strings.ToLower(contentType)
	return strings.Contains(ct, "/json") || strings.Contains(ct, "+json")
}

// basicAuth is the value of an Authorization header for HTTP Basic authentication.
func basicAuth(username, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
}
