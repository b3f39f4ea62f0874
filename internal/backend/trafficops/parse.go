package trafficops

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// alertList is the "alerts" list that every Traffic Ops answer may carry, and the whole of an error answer: a
// list of {text, level}. It is read in place, one alert at a time, since a hostile answer can hold a million
// of them; the texts are joined up to maxAlertText, which is more than a status message shows.
type alertList struct {
	errors, all []byte
}

const maxAlertText = 4 << 10

var errNotAlerts = errors.New("alerts is not a list of {text, level}")

func (l *alertList) UnmarshalJSON(b []byte) error {
	*l = alertList{}
	if backend.IsJSONNull(b) {
		return nil
	}
	if backend.JSONKind(b) != '[' {
		return errNotAlerts
	}
	return backend.EachJSONElement(b, func(raw []byte) error {
		switch backend.JSONKind(raw) {
		case 'n':
			return nil
		case '{':
		default:
			return errNotAlerts
		}
		var text, level []byte
		if err := backend.EachJSONMember(raw, func(key, value []byte) error {
			kind := backend.JSONKind(value)
			switch {
			case backend.JSONKeyIs(key, "text"):
				text = value
			case backend.JSONKeyIs(key, "level"):
				level = value
			default:
				return nil
			}
			if kind != '"' && kind != 'n' {
				return errNotAlerts
			}
			return nil
		}); err != nil {
			return err
		}
		if len(l.errors) >= maxAlertText && len(l.all) >= maxAlertText {
			return nil // enough text: the rest are only checked
		}
		line := backend.OneLine(backend.JSONText(text, maxAlertText), backend.MaxMessageLength)
		if line == "" {
			return nil
		}
		l.all = appendAlert(l.all, line)
		var levelBuf [8]byte
		if bytes.EqualFold(backend.AppendJSONText(levelBuf[:0], level, len(levelBuf)), []byte("error")) {
			l.errors = appendAlert(l.errors, line)
		}
		return nil
	})
}

func appendAlert(joined []byte, text string) []byte {
	if len(joined) >= maxAlertText {
		return joined
	}
	if len(joined) > 0 {
		joined = append(joined, "; "...)
	}
	return append(joined, text...)
}

// text joins the texts of the error alerts, or of all alerts when none is marked error.
func (l alertList) text() string {
	if len(l.errors) > 0 {
		return string(l.errors)
	}
	return string(l.all)
}

// statusReply is the documented envelope of an async_status answer.
type statusReply struct {
	Response *asyncStatus `json:"response"`
	Alerts   alertList    `json:"alerts"`
}

// asyncStatus is the documented response object. The id is not read: the operator knows which job it asked
// about.
type asyncStatus struct {
	Status    *backend.BoundedString `json:"status"`
	StartTime *backend.BoundedString `json:"start_time"`
	// EndTime is documented as null until the job completes; the real server leaves it out instead.
	EndTime *backend.BoundedString `json:"end_time"`
	Message backend.BoundedString  `json:"message"`
}

// alertsReply is the body of an error answer and of a login answer.
type alertsReply struct {
	Alerts alertList `json:"alerts"`
}

// phaseOfStatus maps the documented status words.
var phaseOfStatus = backend.StatusWords{
	"PENDING":   v1alpha1.TaskPhaseRunning,
	"SUCCEEDED": v1alpha1.TaskPhaseSucceeded,
	"FAILED":    v1alpha1.TaskPhaseFailed,
}

// parseStatusReply turns an answer to GET async_status/{id} into an Observation or a classified error.
func parseStatusReply(resp *backend.Response) (backend.Observation, error) {
	if resp.StatusCode != http.StatusOK {
		return backend.Observation{}, errorFromReply(resp)
	}
	var reply statusReply
	if err := json.Unmarshal(resp.Body, &reply); err != nil {
		if !json.Valid(resp.Body) {
			return backend.Observation{}, backend.BadBody(resp, "not JSON")
		}
		return backend.Observation{}, backend.BadBody(resp, "fields of unexpected types")
	}
	if reply.Response == nil {
		return backend.Observation{}, backend.BadBody(resp, "no response object")
	}
	if reply.Response.Status == nil {
		return backend.Observation{}, backend.BadBody(resp, "no response.status")
	}
	r := reply.Response
	obs := backend.Observation{
		VendorStatus:   string(*r.Status),
		Message:        backend.OneLine(string(r.Message), backend.MaxMessageLength),
		StartTime:      parseTime(r.StartTime),
		CompletionTime: parseTime(r.EndTime),
	}
	phase, known := phaseOfStatus.Phase(obs.VendorStatus)
	obs.Phase, obs.UnknownStatus = phase, !known
	return obs, nil
}

// parseTime reads a documented time (RFC 3339 with fractional seconds). A time that is absent, null or not of
// that shape is left out rather than failing the poll: the status is what matters, and the operator then
// uses the time it saw the job start or finish.
func parseTime(s *backend.BoundedString) *time.Time {
	if s == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(*s))
	if err != nil {
		return nil
	}
	return &t
}

// errorFromReply classifies an error status, quoting the texts of the documented alerts body when there is
// one.
func errorFromReply(resp *backend.Response) error {
	if resp.StatusCode < 400 {
		return backend.BadBody(resp, "unexpected status")
	}
	return backend.ErrorForStatus(resp, alertText(resp.Body))
}

// parseLoginReply reads the answer to a login: the session cookies on success, or an error that names the
// login (never a credential or cookie value) and quotes the vendor's alerts.
func parseLoginReply(resp *backend.Response, login string) (*cookies, error) {
	if resp.StatusCode == http.StatusOK {
		c := newCookies((&http.Response{Header: resp.Header}).Cookies())
		if c.len() == 0 {
			return nil, backend.Errorf(backend.KindTransient,
				"Traffic Ops %s answered HTTP 200 without a session cookie", login)
		}
		return c, nil
	}
	text := alertText(resp.Body)
	msg := "Traffic Ops " + login + " failed: "
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound:
		// No login route at this URL and version: a configuration mistake, not a missing task.
		return nil, backend.Errorf(backend.KindInvalidConfig,
			"%sHTTP 404%s: check spec.url and spec.trafficOps.apiVersion", msg, prefixed(text))
	case code >= 400 && code < 500 && code != http.StatusTooManyRequests:
		// 401 is the documented refusal; any other 4xx is a refused login too, and must not fail tasks.
		return nil, backend.Errorf(backend.KindAuthentication, "%sHTTP %d%s", msg, code, prefixed(text))
	case code < 400:
		return nil, backend.BadBody(resp, msg+"unexpected status")
	}
	err := backend.ErrorForStatus(resp, text)
	if e, ok := backend.AsError(err); ok {
		e.Message = msg + e.Message
	}
	return nil, err
}

// alertText joins the texts of a body's error alerts (of all its alerts when none is marked error); "" when
// the body is not the documented alerts shape.
func alertText(body []byte) string {
	var reply alertsReply
	if json.Unmarshal(body, &reply) != nil {
		return ""
	}
	return reply.Alerts.text()
}

func prefixed(text string) string {
	if text == "" {
		return ""
	}
	return ": " + text
}
