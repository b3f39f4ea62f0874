// Package backend defines how the operator talks to a vendor's task-status API: the Backend interface that
// polls one task and returns an Observation or a classified Error, and the rate-limited HTTP Client that
// every vendor package shares. Each vendor lives in a package of its own under internal/backend/.
package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// Observation is what one poll saw of one task.
type Observation struct {
	// Phase is the task's phase as the vendor reports it.
	Phase v1alpha1.TaskPhase
	// VendorStatus is the vendor's own status word, verbatim.
	VendorStatus string
	// Progress is the percent done, nil when the vendor reports none.
	Progress *int32
	// Message is the vendor's message for humans, if any.
	Message string
	// TaskName is the vendor's task name or type, if any.
	TaskName string
	// Result is the vendor's result as JSON, nil when there is none yet.
	Result json.RawMessage
	// UnknownStatus is true when VendorStatus is a word the vendor package does not know; Phase is then
	// Running, and the operator logs the word.
	UnknownStatus bool
	// StartTime and CompletionTime are the vendor's times, nil when it gives none.
	StartTime      *time.Time
	CompletionTime *time.Time
}

// Backend polls tasks of one configured vendor endpoint. Implementations are safe for concurrent use: one
// Backend serves every task of a TaskBackend, and holds its session.
type Backend interface {
	// Poll asks the vendor once about one task. Errors are *Error values that say what kind of failure it was.
	Poll(ctx context.Context, taskID string) (Observation, error)
	// Check makes one cheap authenticated request, to tell whether the endpoint answers and accepts the
	// credentials.
	Check(ctx context.Context) error
}

// ParameterizedBackend is a Backend whose requests take parameters from the AsyncTask (spec.parameters), as
// the generic HTTP backend's do. The controller polls through it when a backend implements it.
type ParameterizedBackend interface {
	Backend
	// PollWithParameters is Poll with the task's parameters, which may only fill those the backend leaves
	// unset: overriding one of the backend's is a KindTerminal error, and nothing is sent.
	PollWithParameters(ctx context.Context, taskID string, parameters map[string]string) (Observation, error)
}

// PollTask polls one task through PollWithParameters when b takes parameters, else through Poll.
func PollTask(ctx context.Context, b Backend, taskID string, parameters map[string]string) (Observation, error) {
	if pb, ok := b.(ParameterizedBackend); ok {
		return pb.PollWithParameters(ctx, taskID, parameters)
	}
	return b.Poll(ctx, taskID)
}

// Config is what a vendor package builds a Backend from.
type Config struct {
	// Spec is the TaskBackend's spec, defaults applied.
	Spec v1alpha1.TaskBackendSpec
	// Credentials are the keys of the credentials Secret; empty when the backend names none.
	Credentials Credentials
	// Client sends every request, within the backend's rate limit and request timeout.
	Client *Client
	// OnLogin, when set, is called after every vendor login (for metrics); vendors pass it to their Session.
	OnLogin func()
	// FirstLoginRetry is the first wait before a refused login is tried again (Session.RetryRefusedLoginsAfter):
	// the backend's poll interval, or MaxLoginBackoff on a replica that leaves the retries to the backend's
	// owner (--sharding=ring).
	FirstLoginRetry time.Duration
}

// Factory builds a Backend. It returns an *Error of KindInvalidConfig when the spec or credentials are not a
// usable combination, naming what to fix.
type Factory func(Config) (Backend, error)

// Credentials are the keys of a credentials Secret. They print as their key names only, so a value can never
// reach a log line through %v.
type Credentials map[string][]byte

// Get returns the value of key, or "" when it is absent.
func (c Credentials) Get(key string) string { return string(c[key]) }

// Has reports whether every key is present and not empty.
func (c Credentials) Has(keys ...string) bool {
	for _, k := range keys {
		if len(c[k]) == 0 {
			return false
		}
	}
	return true
}

// String lists the key names, never the values.
func (c Credentials) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "credentials{" + strings.Join(keys, ",") + "}"
}

// GoString keeps %#v from printing values too.
func (c Credentials) GoString() string { return c.String() }

// MissingCredentials is the InvalidConfig error for a Secret that holds no complete credential set.
func MissingCredentials(sets ...[]string) error {
	alternatives := make([]string, len(sets))
	for i, set := range sets {
		alternatives[i] = strings.Join(set, " + ")
	}
	return Errorf(KindInvalidConfig, "credentials Secret must hold %s", strings.Join(alternatives, ", or "))
}

// ErrorKind says how the operator reacts to an Error.
type ErrorKind string

// Kinds of error.
const (
	// KindTransient is a failure that may pass: connection, timeout, 5xx, a body not of the documented shape.
	// The task keeps its last observation and polls again with backoff.
	KindTransient ErrorKind = "Transient"
	// KindAuthentication is a refused login or a 401/403 that a fresh login did not cure.
	KindAuthentication ErrorKind = "Authentication"
	// KindNotFound is the vendor saying it has no such task.
	KindNotFound ErrorKind = "NotFound"
	// KindTerminal is an answer that no retry will change, such as a malformed task ID: the task fails.
	KindTerminal ErrorKind = "Terminal"
	// KindInvalidConfig is a spec or Secret the backend cannot work with.
	KindInvalidConfig ErrorKind = "InvalidConfig"
	// KindDeferred means no request was sent: the backend's rate limit or its share of the operator's
	// workers is used up. Nothing is wrong with the task; it is asked again after RetryAfter.
	KindDeferred ErrorKind = "Deferred"

	// The kinds below say why the operator could not use a backend at all, before any vendor was asked. The
	// controller's connector returns them; vendor packages never do.

	// KindBackendNotFound is a task naming a TaskBackend or ClusterTaskBackend that does not exist.
	KindBackendNotFound ErrorKind = "BackendNotFound"
	// KindSecretNotFound is a backend naming a credentials or CA Secret that does not exist.
	KindSecretNotFound ErrorKind = "SecretNotFound"
	// KindNotAllowed is a ClusterTaskBackend whose spec.allowedNamespaces does not select the task's namespace.
	KindNotAllowed ErrorKind = "BackendNotAllowed"
	// KindUnreachable is the API server failing to give the operator the backend, a Secret or a namespace.
	KindUnreachable ErrorKind = "Unreachable"
)

// Error is a classified backend failure. Message is one line for humans and never holds a secret.
type Error struct {
	Kind    ErrorKind
	Message string
	// RetryAfter, when set, is how long the vendor asked the operator to wait.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error of the given kind.
func Errorf(kind ErrorKind, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err, KindTransient for an unclassified error.
func KindOf(err error) ErrorKind {
	if e, ok := AsError(err); ok {
		return e.Kind
	}
	return KindTransient
}

// AsError returns err as an *Error, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// DeferredFor reports whether err says the request was not sent yet (KindDeferred), and how long to wait
// before asking again: the error's RetryAfter, at least a second.
func DeferredFor(err error) (time.Duration, bool) {
	e, ok := AsError(err)
	if !ok || e.Kind != KindDeferred {
		return 0, false
	}
	return max(e.RetryAfter, time.Second), true
}

// ErrorForStatus classifies an HTTP error answer the way the contract says: 401/403 authentication, 404 not
// found, 429 and 5xx transient, any other 4xx terminal. vendorMessage is the message from the vendor's error
// body, already extracted by the vendor package.
func ErrorForStatus(resp *Response, vendorMessage string) error {
	msg := fmt.Sprintf("vendor answered HTTP %d", resp.StatusCode)
	switch {
	case vendorMessage != "":
		msg += ": " + vendorMessage
	case len(bytes.TrimSpace(resp.Body)) > 0:
		// Not the vendor's error shape (a proxy's page, say): quote its start so the user sees who answered.
		msg += fmt.Sprintf(" with a body that is not the vendor's error shape: %q", Snippet(resp.Body))
	}
	e := &Error{Message: msg, RetryAfter: resp.RetryAfter}
	switch {
	case resp.StatusCode == 401 || resp.StatusCode == 403:
		e.Kind = KindAuthentication
	case resp.StatusCode == 404:
		e.Kind = KindNotFound
	case resp.StatusCode == 429 || resp.StatusCode >= 500:
		e.Kind = KindTransient
	case resp.StatusCode >= 400:
		e.Kind = KindTerminal
	default:
		e.Kind = KindTransient
		e.Message = fmt.Sprintf("vendor answered unexpected HTTP %d", resp.StatusCode)
	}
	return e
}

// BadBody is the transient error for an answer that is not of the documented shape. It quotes the start of
// the body, printable characters only, so the user can see what came back (an HTML proxy page, say).
func BadBody(resp *Response, problem string) error {
	return Errorf(KindTransient, "vendor answered HTTP %d with a body that is not the documented shape (%s): %q",
		resp.StatusCode, problem, Snippet(resp.Body))
}
