package networkinsight

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// progressReply is the documented 200 body of GET /api/ni/groups/task/progress/{requestId}
// (SaveBulkDiscoveredAppProgressResponse). Every field is documented as optional.
type progressReply struct {
	RequestID string  `json:"request_id"`
	TaskName  string  `json:"task_name"`
	Status    *string `json:"status"`
	// Progress is a double; the task is complete at 100.
	Progress *float64 `json:"progress"`
	// StartTime is epoch milliseconds, documented as int64; a float such as 1.641321499579E12 decodes too.
	StartTime *float64 `json:"start_time"`
	// AppSaveResponse is kept raw: it is the task's result, passed on as the vendor wrote it.
	AppSaveResponse json.RawMessage `json:"app_save_response"`
}

// appSaveItem is one application's save outcome. The reference example spells its keys in camelCase
// (entityId, responseCode, errorMessage) and the data structure page in snake_case (entity_id, response_code,
// error_message), so both are read.
type appSaveItem struct {
	EntityID     string
	Name         string
	ResponseCode string
	ErrorMessage string
}

func (it *appSaveItem) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	it.EntityID = textField(fields, "entityId", "entity_id")
	it.Name = textField(fields, "name")
	it.ResponseCode = textField(fields, "responseCode", "response_code")
	it.ErrorMessage = textField(fields, "errorMessage", "error_message")
	return nil
}

// failed reports whether the application was not saved: a response code other than SUCCESS, or, with no
// code at all, an error message.
func (it appSaveItem) failed() bool {
	if it.ResponseCode != "" {
		return !strings.EqualFold(it.ResponseCode, "SUCCESS")
	}
	return it.ErrorMessage != ""
}

// String says which application failed and why, in one line: "name (CODE): message".
func (it appSaveItem) String() string {
	who := it.Name
	if who == "" {
		who = it.EntityID
	}
	switch {
	case who != "" && it.ResponseCode != "" && it.ErrorMessage != "":
		return fmt.Sprintf("%s (%s): %s", who, it.ResponseCode, it.ErrorMessage)
	case who != "":
		return who + ": " + it.ResponseCode + it.ErrorMessage
	case it.ResponseCode != "" && it.ErrorMessage != "":
		return it.ResponseCode + ": " + it.ErrorMessage
	}
	return it.ResponseCode + it.ErrorMessage
}

// textField returns the first of keys present in fields, as text: a JSON string unquoted, anything else as
// written (an entity ID sent as a number is still worth showing).
func textField(fields map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		raw, ok := fields[k]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return oneLine(s)
		}
		return oneLine(string(raw))
	}
	return ""
}

// errorReply is the documented body of 401, 404 and 500 (UnauthorizedResponse, NotFoundResponse,
// InternalErrorResponse). code is an int32 in the reference; it is kept raw so that a string code still reads.
type errorReply struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Details []struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
		Target  []string        `json:"target"`
	} `json:"details"`
}

// String quotes the vendor's code and message, and the first detail when it adds something.
func (e errorReply) String() string {
	msg := oneLine(e.Message)
	if code := codeText(e.Code); code != "" {
		if msg == "" {
			msg = "code " + code
		} else {
			msg = fmt.Sprintf("%s (code %s)", msg, code)
		}
	}
	if len(e.Details) > 0 {
		d := e.Details[0]
		if detail := oneLine(d.Message); detail != "" && detail != oneLine(e.Message) {
			if len(d.Target) > 0 {
				detail += " [" + oneLine(strings.Join(d.Target, ", ")) + "]"
			}
			if msg == "" {
				return detail
			}
			msg += "; " + detail
		}
	}
	return msg
}

func (e errorReply) empty() bool {
	return codeText(e.Code) == "" && e.Message == "" && len(e.Details) == 0
}

func codeText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return oneLine(s)
	}
	return oneLine(string(raw))
}

// loginReply is the answer to POST /api/ni/auth/token.
type loginReply struct {
	Token string `json:"token"`
	// Expiry is documented as epoch seconds, but every example shows 13-digit milliseconds.
	Expiry *float64 `json:"expiry"`
}

// statusWords maps status words to phases. Only FINISHED is documented; the failure words are inferred, and
// the running words are the ones VMware task APIs use, listed so that they are not reported as unknown.
var statusWords = map[string]v1alpha1.TaskPhase{
	"FINISHED":    v1alpha1.TaskPhaseSucceeded,
	"FAILED":      v1alpha1.TaskPhaseFailed,
	"ERROR":       v1alpha1.TaskPhaseFailed,
	"CANCELLED":   v1alpha1.TaskPhaseFailed,
	"CANCELED":    v1alpha1.TaskPhaseFailed,
	"IN_PROGRESS": v1alpha1.TaskPhaseRunning,
	"RUNNING":     v1alpha1.TaskPhaseRunning,
	"STARTED":     v1alpha1.TaskPhaseRunning,
	"NOT_STARTED": v1alpha1.TaskPhaseRunning,
	"PENDING":     v1alpha1.TaskPhaseRunning,
	"QUEUED":      v1alpha1.TaskPhaseRunning,
}

// parseProgressReply turns an answer to the task progress query into an Observation or a classified error.
func parseProgressReply(resp *backend.Response) (backend.Observation, error) {
	if resp.StatusCode != http.StatusOK {
		return backend.Observation{}, errorFromReply(resp)
	}
	var reply progressReply
	if err := json.Unmarshal(resp.Body, &reply); err != nil {
		return backend.Observation{}, backend.BadBody(resp, "not a JSON task progress object")
	}
	if reply.Status == nil && reply.Progress == nil {
		return backend.Observation{}, backend.BadBody(resp, "neither status nor progress")
	}
	obs := backend.Observation{TaskName: oneLine(reply.TaskName), Phase: v1alpha1.TaskPhaseRunning}
	if reply.Status != nil {
		obs.VendorStatus = oneLine(*reply.Status)
	}
	word := strings.ToUpper(strings.TrimSpace(obs.VendorStatus))
	phase, known := statusWords[word]
	obs.UnknownStatus = word != "" && !known
	switch {
	case phase == v1alpha1.TaskPhaseFailed:
		// An explicit failure word wins over a progress of 100.
		obs.Phase = phase
	case phase == v1alpha1.TaskPhaseSucceeded || (reply.Progress != nil && *reply.Progress >= 100):
		obs.Phase = v1alpha1.TaskPhaseSucceeded
	}
	if reply.Progress != nil {
		obs.Progress = backend.Percent(*reply.Progress)
	}
	if reply.StartTime != nil {
		obs.StartTime = backend.EpochTime(*reply.StartTime)
	}
	items, result, err := readAppSaveResponse(reply.AppSaveResponse)
	if err != nil {
		return backend.Observation{}, backend.BadBody(resp, err.Error())
	}
	obs.Result = result
	obs.Message = summarize(obs.Phase, items)
	return obs, nil
}

// readAppSaveResponse decodes the items of app_save_response and returns them with the array as compact
// JSON; an absent or null array is no result.
func readAppSaveResponse(raw json.RawMessage) ([]appSaveItem, json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil, nil
	}
	if raw[0] != '[' {
		return nil, nil, fmt.Errorf("app_save_response is not an array")
	}
	var items []appSaveItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, nil, fmt.Errorf("app_save_response items are not objects")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, nil, fmt.Errorf("app_save_response is not JSON")
	}
	return items, compact.Bytes(), nil
}

// summarize says how the applications fared: a finished task may still have failed to save some of them.
func summarize(phase v1alpha1.TaskPhase, items []appSaveItem) string {
	var failed []appSaveItem
	for _, it := range items {
		if it.failed() {
			failed = append(failed, it)
		}
	}
	switch {
	case phase == v1alpha1.TaskPhaseSucceeded && len(failed) > 0:
		return fmt.Sprintf("%d of %d applications failed to save: %s", len(failed), len(items), failed[0])
	case phase == v1alpha1.TaskPhaseSucceeded && len(items) > 0:
		return fmt.Sprintf("Saved %d applications", len(items))
	case phase == v1alpha1.TaskPhaseFailed && len(failed) > 0:
		return failed[0].String()
	}
	return ""
}

// errorFromReply classifies an answer other than 200, quoting the documented {code, message, details} body.
func errorFromReply(resp *backend.Response) error {
	var e errorReply
	body := bytes.TrimSpace(resp.Body)
	if err := json.Unmarshal(body, &e); err != nil || e.empty() {
		switch {
		case resp.StatusCode < 400:
			return backend.BadBody(resp, "unexpected status")
		case resp.StatusCode == http.StatusNotFound && len(body) > 0 && err != nil:
			// Network Insight's 404 carries its error body; any other 404 page comes from something in
			// between (a proxy, a wrong spec.url) and says nothing about the task.
			return backend.BadBody(resp, "404 without Network Insight's error body; check spec.url")
		}
		return backend.ErrorForStatus(resp, "")
	}
	return backend.ErrorForStatus(resp, e.String())
}

// parseLoginReply reads the token and its expiry from a login answer. now is used to decide whether the
// stated expiry can be trusted; an expiry that is missing or already (nearly) past is returned as zero, so the
// session is renewed on a 401 rather than on every poll.
func parseLoginReply(resp *backend.Response, now time.Time, margin time.Duration) (string, time.Time, error) {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return "", time.Time{}, loginError(resp)
	}
	var reply loginReply
	if err := json.Unmarshal(resp.Body, &reply); err != nil {
		return "", time.Time{}, backend.BadBody(resp, "login answer is not JSON")
	}
	if strings.TrimSpace(reply.Token) == "" {
		return "", time.Time{}, backend.Errorf(backend.KindTransient,
			"Network Insight login answered HTTP %d without a token", resp.StatusCode)
	}
	var expiry time.Time
	if reply.Expiry != nil {
		if at := backend.EpochTime(*reply.Expiry); at != nil && at.After(now.Add(2*margin)) {
			expiry = *at
		}
	}
	return reply.Token, expiry, nil
}

// loginError classifies a refused login. A login is not a task, so a 404 or 400 here is a configuration
// problem (wrong spec.url, a domain the appliance does not know), never "task not found" or a failed task.
func loginError(resp *backend.Response) error {
	var e errorReply
	vendor := ""
	if json.Unmarshal(resp.Body, &e) == nil && !e.empty() {
		vendor = ": " + e.String()
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return backend.Errorf(backend.KindAuthentication,
			"Network Insight refused the login (HTTP %d)%s; check username, password and spec.networkInsight domain", resp.StatusCode, vendor)
	case resp.StatusCode == http.StatusNotFound:
		return backend.Errorf(backend.KindInvalidConfig,
			"no Network Insight login endpoint at spec.url (POST /api/ni/auth/token answered HTTP 404)%s; spec.url must be the appliance's base URL", vendor)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		err := backend.ErrorForStatus(resp, strings.TrimPrefix(vendor, ": "))
		if be, ok := backend.AsError(err); ok {
			be.Message = "Network Insight login failed: " + be.Message
		}
		return err
	case resp.StatusCode >= 400:
		return backend.Errorf(backend.KindInvalidConfig,
			"Network Insight rejected the login request (HTTP %d)%s; check spec.networkInsight", resp.StatusCode, vendor)
	}
	return backend.BadBody(resp, "unexpected login status")
}

// oneLine folds vendor text to a single line, so that it fits a status message.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if !strings.ContainsAny(s, "\r\n\t") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
