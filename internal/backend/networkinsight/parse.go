package networkinsight

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// progressReply is the documented 200 body of GET /api/ni/groups/task/progress/{requestId}
// (SaveBulkDiscoveredAppProgressResponse). Every field is documented as optional.
type progressReply struct {
	RequestID backend.BoundedString  `json:"request_id"`
	TaskName  backend.BoundedString  `json:"task_name"`
	Status    *backend.BoundedString `json:"status"`
	// Progress is a double; the task is complete at 100.
	Progress *float64 `json:"progress"`
	// StartTime is epoch milliseconds, documented as int64; a float such as 1.641321499579E12 decodes too.
	StartTime *float64 `json:"start_time"`
	// AppSaveResponse is counted in place, one item at a time: it can hold a million items within the body
	// limit. It is the task's result too, which appSaveResponseIn finds in the body.
	AppSaveResponse appSaveSummary `json:"app_save_response"`
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

// appSaveFields are an item's fields as they stand in the body, each spelling apart: raw JSON values,
// decoded only for the item that is quoted.
type appSaveFields struct {
	entityID, entityIDSnake, name, responseCode, responseCodeSnake, errorMessage, errorMessageSnake []byte
}

func readAppSaveFields(item []byte) appSaveFields {
	var f appSaveFields
	_ = backend.EachJSONMember(item, func(key, value []byte) error {
		// Matched exactly, as the map keys these fields were once looked up in.
		for _, field := range []struct {
			name string
			dst  *[]byte
		}{
			{"entityId", &f.entityID}, {"entity_id", &f.entityIDSnake}, {"name", &f.name},
			{"responseCode", &f.responseCode}, {"response_code", &f.responseCodeSnake},
			{"errorMessage", &f.errorMessage}, {"error_message", &f.errorMessageSnake},
		} {
			if backend.JSONKeyEquals(key, field.name) {
				*field.dst = value
			}
		}
		return nil
	})
	return f
}

// first returns the first of the values that is present and not null.
func first(values ...[]byte) []byte {
	for _, v := range values {
		if !backend.IsJSONNull(v) {
			return v
		}
	}
	return nil
}

// failed is appSaveItem.failed on the raw fields, without decoding them: a response code other than
// SUCCESS, or, with no code at all, an error message.
func (f appSaveFields) failed() bool {
	var buf [64]byte
	if code := first(f.responseCode, f.responseCodeSnake); code != nil {
		text := backend.AppendJSONText(buf[:0], code, len(buf))
		text = bytes.TrimFunc(text, isSpaceOrControl) // as backend.OneLine folds it
		return len(text) > 0 && !bytes.EqualFold(text, []byte("SUCCESS"))
	}
	message := first(f.errorMessage, f.errorMessageSnake)
	return message != nil && len(bytes.TrimSpace(backend.AppendJSONText(buf[:0], message, len(buf)))) > 0
}

// item decodes the fields of the one item a message quotes.
func (f appSaveFields) item() appSaveItem {
	text := func(raw []byte, maxChars int) string {
		return backend.OneLine(backend.JSONText(raw, backend.MaxTextBytes), maxChars)
	}
	return appSaveItem{
		EntityID:     text(first(f.entityID, f.entityIDSnake), backend.MaxWordLength),
		Name:         text(f.name, backend.MaxWordLength),
		ResponseCode: text(first(f.responseCode, f.responseCodeSnake), backend.MaxWordLength),
		ErrorMessage: text(first(f.errorMessage, f.errorMessageSnake), backend.MaxMessageLength),
	}
}

// appSaveSummary is what the message says of app_save_response: how many items, how many failed, and the
// first failed one.
type appSaveSummary struct {
	present       bool
	items, failed int
	firstFailed   appSaveItem
}

var (
	errAppSaveNotArray   = errors.New("app_save_response is not an array")
	errAppSaveNotObjects = errors.New("app_save_response items are not objects")
)

func (s *appSaveSummary) UnmarshalJSON(b []byte) error {
	*s = appSaveSummary{}
	if backend.IsJSONNull(b) {
		return nil
	}
	if backend.JSONKind(b) != '[' {
		return errAppSaveNotArray
	}
	s.present = true
	return backend.EachJSONElement(b, func(raw []byte) error {
		switch backend.JSONKind(raw) {
		case 'n':
			s.items++ // a null item is an empty one
			return nil
		case '{':
		default:
			return errAppSaveNotObjects
		}
		s.items++
		if f := readAppSaveFields(raw); f.failed() {
			if s.failed++; s.failed == 1 {
				s.firstFailed = f.item()
			}
		}
		return nil
	})
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

// errorReply is the documented body of 401, 404 and 500 (UnauthorizedResponse, NotFoundResponse,
// InternalErrorResponse). code is an int32 in the reference; it is read as text so that a string code still
// reads.
type errorReply struct {
	Code    vendorCode            `json:"code"`
	Message backend.BoundedString `json:"message"`
	Details errorDetails          `json:"details"`
}

// errorDetail is one entry of details.
type errorDetail struct {
	Code    vendorCode            `json:"code"`
	Message backend.BoundedString `json:"message"`
	Target  targets               `json:"target"`
}

// vendorCode is a code of any JSON type, as one line of text.
type vendorCode string

func (c *vendorCode) UnmarshalJSON(b []byte) error {
	*c = vendorCode(backend.OneLine(backend.JSONText(b, backend.MaxTextBytes), backend.MaxWordLength))
	return nil
}

// errorDetails keeps the first of the details, which is all a message quotes; the others are only checked to
// be of the documented shape, in place.
type errorDetails struct {
	count int
	first errorDetail
}

var errNotDetails = errors.New("details is not a list of {code, message, target}")

func (d *errorDetails) UnmarshalJSON(b []byte) error {
	*d = errorDetails{}
	if backend.IsJSONNull(b) {
		return nil
	}
	if backend.JSONKind(b) != '[' {
		return errNotDetails
	}
	return backend.EachJSONElement(b, func(raw []byte) error {
		if d.count++; d.count == 1 {
			return json.Unmarshal(raw, &d.first)
		}
		switch backend.JSONKind(raw) {
		case 'n':
			return nil
		case '{':
		default:
			return errNotDetails
		}
		return backend.EachJSONMember(raw, func(key, value []byte) error {
			kind := backend.JSONKind(value)
			switch {
			case backend.JSONKeyIs(key, "message") && kind != '"' && kind != 'n':
				return errNotDetails
			case backend.JSONKeyIs(key, "target"):
				return (&targets{}).UnmarshalJSON(value)
			}
			return nil
		})
	})
}

// targets is a detail's target list, joined with ", " up to backend.MaxTextBytes.
type targets struct {
	count  int
	joined string
}

func (t *targets) UnmarshalJSON(b []byte) error {
	*t = targets{}
	if backend.IsJSONNull(b) {
		return nil
	}
	if backend.JSONKind(b) != '[' {
		return errNotDetails
	}
	var joined []byte
	err := backend.EachJSONElement(b, func(raw []byte) error {
		if kind := backend.JSONKind(raw); kind != '"' && kind != 'n' {
			return errNotDetails
		}
		if t.count++; len(joined) < backend.MaxTextBytes {
			if t.count > 1 {
				joined = append(joined, ", "...)
			}
			joined = backend.AppendJSONText(joined, raw, backend.MaxTextBytes-len(joined))
		}
		return nil
	})
	t.joined = string(joined)
	return err
}

// String quotes the vendor's code and message, and the first detail when it adds something.
func (e errorReply) String() string {
	msg := backend.OneLine(string(e.Message), backend.MaxMessageLength)
	if code := string(e.Code); code != "" {
		if msg == "" {
			msg = "code " + code
		} else {
			msg = fmt.Sprintf("%s (code %s)", msg, code)
		}
	}
	if e.Details.count > 0 {
		d := e.Details.first
		if detail := backend.OneLine(string(d.Message), backend.MaxMessageLength); detail != "" && detail != backend.OneLine(string(e.Message), backend.MaxMessageLength) {
			if d.Target.count > 0 {
				detail += " [" + backend.OneLine(d.Target.joined, backend.MaxMessageLength) + "]"
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
	return e.Code == "" && e.Message == "" && e.Details.count == 0
}

// loginReply is the answer to POST /api/ni/auth/token.
type loginReply struct {
	Token backend.BoundedString `json:"token"`
	// Expiry is documented as epoch seconds, but every example shows 13-digit milliseconds.
	Expiry *float64 `json:"expiry"`
}

// statusWords maps status words to phases. Only FINISHED is documented; the failure words are inferred, and
// the running words are the ones VMware task APIs use, listed so that they are not reported as unknown.
var statusWords = backend.StatusWords{
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
		if errors.Is(err, errAppSaveNotArray) || errors.Is(err, errAppSaveNotObjects) {
			return backend.Observation{}, backend.BadBody(resp, err.Error())
		}
		return backend.Observation{}, backend.BadBody(resp, "not a JSON task progress object")
	}
	if reply.Status == nil && reply.Progress == nil {
		return backend.Observation{}, backend.BadBody(resp, "neither status nor progress")
	}
	obs := backend.Observation{TaskName: backend.OneLine(string(reply.TaskName), backend.MaxWordLength), Phase: v1alpha1.TaskPhaseRunning}
	if reply.Status != nil {
		obs.VendorStatus = backend.OneLine(string(*reply.Status), backend.MaxWordLength)
	}
	// VendorStatus is folded by OneLine, so it has no space to trim.
	phase, known := statusWords.Phase(obs.VendorStatus)
	obs.UnknownStatus = obs.VendorStatus != "" && !known
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
	if reply.AppSaveResponse.present {
		obs.Result = appSaveResponseIn(resp.Body)
	}
	obs.Message = summarize(obs.Phase, reply.AppSaveResponse)
	return obs, nil
}

// appSaveResponseIn returns the app_save_response array of a valid progress body as compact JSON, referencing
// the body when the array is already compact. Like encoding/json, it takes the last member of that name,
// matched ignoring case.
func appSaveResponseIn(body []byte) json.RawMessage {
	var raw []byte
	_ = backend.EachJSONMember(body, func(key, value []byte) error {
		if backend.JSONKeyIs(key, "app_save_response") {
			raw = value
		}
		return nil
	})
	return backend.CompactJSON(raw)
}

// summarize says how the applications fared: a finished task may still have failed to save some of them.
func summarize(phase v1alpha1.TaskPhase, items appSaveSummary) string {
	switch {
	case phase == v1alpha1.TaskPhaseSucceeded && items.failed > 0:
		return fmt.Sprintf("%d of %d applications failed to save: %s", items.failed, items.items, items.firstFailed)
	case phase == v1alpha1.TaskPhaseSucceeded && items.items > 0:
		return fmt.Sprintf("Saved %d applications", items.items)
	case phase == v1alpha1.TaskPhaseFailed && items.failed > 0:
		return items.firstFailed.String()
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
	if strings.TrimSpace(string(reply.Token)) == "" {
		return "", time.Time{}, backend.Errorf(backend.KindTransient,
			"Network Insight login answered HTTP %d without a token", resp.StatusCode)
	}
	var expiry time.Time
	if reply.Expiry != nil {
		if at := backend.EpochTime(*reply.Expiry); at != nil && at.After(now.Add(2*margin)) {
			expiry = *at
		}
	}
	return string(reply.Token), expiry, nil
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

// isSpaceOrControl is what backend.OneLine drops from the ends of a text.
func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
