package apigateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// taskReply is the documented 200 body. task_result, a JSON document inside a string ("" until the task
// ends), is not decoded with the rest: it is the task's result, which taskResultIn takes from the body with a
// single copy at most.
type taskReply struct {
	TaskStatus *backend.BoundedString `json:"task_status"`
	TaskType   backend.BoundedString  `json:"task_type"`
}

// errorReply is the documented body of every error status, and of a failed task's task_result.
type errorReply struct {
	ErrorCode backend.BoundedString `json:"error_code"`
	ErrorMsg  backend.BoundedString `json:"error_msg"`
}

func (e errorReply) String() string {
	switch {
	case e.ErrorCode != "" && e.ErrorMsg != "":
		return string(e.ErrorCode + ": " + e.ErrorMsg)
	default:
		return string(e.ErrorCode + e.ErrorMsg)
	}
}

// importResult is the part of an import_api task_result that the message summarises: how many APIs were
// imported and how many failed, and the first failure. The lists are counted in place, not decoded: a
// hostile result can hold a million entries.
type importResult struct {
	Success successList `json:"success"`
	Failure failureList `json:"failure"`
}

// successList counts the entries of a list; present is false for an absent or null list.
type successList struct {
	present bool
	count   int
}

var errNotAList = errors.New("not a list")

func (l *successList) UnmarshalJSON(b []byte) error {
	*l = successList{}
	if backend.IsJSONNull(b) {
		return nil
	}
	if backend.JSONKind(b) != '[' {
		return errNotAList
	}
	l.present = true
	return backend.EachJSONElement(b, func([]byte) error { l.count++; return nil })
}

// failureList counts the failures and keeps the first.
type failureList struct {
	successList
	first errorReply
}

var errNotErrors = errors.New("not a list of {error_code, error_msg}")

func (l *failureList) UnmarshalJSON(b []byte) error {
	*l = failureList{}
	if backend.IsJSONNull(b) {
		return nil
	}
	if backend.JSONKind(b) != '[' {
		return errNotAList
	}
	l.present = true
	return backend.EachJSONElement(b, func(raw []byte) error {
		if l.count++; l.count == 1 {
			return json.Unmarshal(raw, &l.first)
		}
		switch backend.JSONKind(raw) {
		case 'n':
			return nil
		case '{':
		default:
			return errNotErrors
		}
		// The others are only checked to be of the documented shape, as decoding them would.
		return backend.EachJSONMember(raw, func(key, value []byte) error {
			kind := backend.JSONKind(value)
			if (backend.JSONKeyIs(key, "error_code") || backend.JSONKeyIs(key, "error_msg")) && kind != '"' && kind != 'n' {
				return errNotErrors
			}
			return nil
		})
	})
}

// phaseOfStatus maps the documented task_status words; the current Huawei Cloud page spells success
// "succeeded", the OTC page "succeed".
var phaseOfStatus = backend.StatusWords{
	"waiting":    v1alpha1.TaskPhasePending,
	"processing": v1alpha1.TaskPhaseRunning,
	"succeed":    v1alpha1.TaskPhaseSucceeded,
	"succeeded":  v1alpha1.TaskPhaseSucceeded,
	"failed":     v1alpha1.TaskPhaseFailed,
}

// parseTaskReply turns an answer to the async-task query into an Observation or a classified error.
func parseTaskReply(resp *backend.Response) (backend.Observation, error) {
	if resp.StatusCode != http.StatusOK {
		return backend.Observation{}, errorFromReply(resp)
	}
	var reply taskReply
	if err := json.Unmarshal(resp.Body, &reply); err != nil {
		return backend.Observation{}, backend.BadBody(resp, "not JSON")
	}
	if reply.TaskStatus == nil {
		return backend.Observation{}, backend.BadBody(resp, "no task_status")
	}
	obs := backend.Observation{VendorStatus: string(*reply.TaskStatus), TaskName: string(reply.TaskType)}
	phase, known := phaseOfStatus.Phase(obs.VendorStatus)
	obs.Phase, obs.UnknownStatus = phase, !known
	taskResult, token, ok := taskResultIn(resp.Body)
	if !ok {
		return backend.Observation{}, backend.BadBody(resp, "task_result is not a string")
	}
	obs.Result, obs.Message = readTaskResult(taskResult, token, phase)
	return obs, nil
}

// taskResultIn returns the text of the task_result string of a valid body: a sub-slice of the body when the
// string holds no escapes, else one copy of its decoded size, and the string as written. Like encoding/json,
// it takes the last member of that name, matched ignoring case; ok is false when it is not a string (null is
// "").
func taskResultIn(body []byte) (text, token []byte, ok bool) {
	var raw []byte
	_ = backend.EachJSONMember(body, func(key, value []byte) error {
		if backend.JSONKeyIs(key, "task_result") {
			raw = value
		}
		return nil
	})
	switch backend.JSONKind(raw) {
	case 0, 'n':
		return nil, nil, true
	case '"':
	default:
		return nil, nil, false
	}
	content := raw[1 : len(raw)-1]
	if bytes.IndexByte(content, '\\') < 0 && utf8.Valid(content) {
		return content, raw, true
	}
	// Unescaping never lengthens the text, but each invalid byte becomes a 3-byte U+FFFD.
	return backend.AppendJSONText(make([]byte, 0, len(content)), raw, 3*len(content)), raw, true
}

// readTaskResult parses the task_result string into JSON and a message. A task_result that is not JSON is
// kept as a JSON string, so nothing the vendor said is lost: the vendor's own string (token) when the text
// needs no trimming, so that it is not copied a second time.
func readTaskResult(text, token []byte, phase v1alpha1.TaskPhase) (json.RawMessage, string) {
	raw := bytes.TrimSpace(text)
	if len(raw) == 0 {
		return nil, ""
	}
	if !json.Valid(raw) {
		if len(raw) == len(text) && utf8.Valid(token) {
			return token, "task_result is not JSON; kept as text"
		}
		return backend.QuoteJSON(raw), "task_result is not JSON; kept as text"
	}
	result := json.RawMessage(raw)
	if phase == v1alpha1.TaskPhaseFailed {
		var e errorReply
		if json.Unmarshal(result, &e) == nil && (e.ErrorCode != "" || e.ErrorMsg != "") {
			return result, e.String()
		}
		return result, ""
	}
	var imported importResult
	if phase == v1alpha1.TaskPhaseSucceeded && bytes.HasPrefix(result, []byte("{")) &&
		json.Unmarshal(result, &imported) == nil && (imported.Success.present || imported.Failure.present) {
		msg := fmt.Sprintf("Imported %d APIs", imported.Success.count)
		if n := imported.Failure.count; n > 0 {
			msg += fmt.Sprintf(", %d failed (first: %s)", n, imported.Failure.first.String())
		}
		return result, msg
	}
	return result, ""
}

// errorFromReply classifies an error status, quoting the documented {error_code, error_msg} body when there
// is one.
func errorFromReply(resp *backend.Response) error {
	var e errorReply
	if err := json.Unmarshal(resp.Body, &e); err != nil || (e.ErrorCode == "" && e.ErrorMsg == "") {
		if resp.StatusCode < 400 {
			return backend.BadBody(resp, "unexpected status")
		}
		return backend.ErrorForStatus(resp, "")
	}
	return backend.ErrorForStatus(resp, e.String())
}
