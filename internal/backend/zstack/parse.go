package zstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// The words written to vendorStatus. ZStack's API job has no status word of its own: its state is the HTTP
// status of GET /zstack/v1/api-jobs/{apiId}, so these name that state.
const (
	statusRunning   = "Running"   // 202
	statusSucceeded = "Succeeded" // 200 with the API's result
	statusFailed    = "Failed"    // 503 (or 200) with an error body
)

// codeInvalidSession is the error code of an expired or unknown session (IdentityErrors.INVALID_SESSION).
const codeInvalidSession = "ID.1001"

// maxMessage keeps a vendor's error text (details can hold a long explanation) to one readable line.
const maxMessage = 512

// errorCode is ZStack's ErrorCode. Only code, description, details and cause are read; the reserved fields
// (elaboration, location, cost, opaque) are left alone so that an odd value in them cannot make a real error
// body unreadable.
type errorCode struct {
	Code        lenientText `json:"code"`
	Description lenientText `json:"description"`
	Details     lenientText `json:"details"`
	Cause       *errorCode  `json:"cause"`
}

// errorReply is a body that carries an error: every failed API answer, and an api-jobs answer of a failed job.
type errorReply struct {
	Error *errorCode `json:"error"`
}

func (e *errorCode) empty() bool {
	return e == nil || (e.Code == "" && e.Description == "" && e.Details == "")
}

// String joins code, description and details, and the root cause's when it adds something, on one line.
func (e *errorCode) String() string {
	if e.empty() {
		return ""
	}
	parts := nonEmpty(string(e.Code), string(e.Description), string(e.Details))
	msg := strings.Join(parts, ": ")
	if c := e.Cause; !c.empty() && c.Code != e.Code {
		msg += " (cause: " + strings.Join(nonEmpty(string(c.Code), string(c.Description), string(c.Details)), ": ") + ")"
	}
	return backend.OneLine(msg, maxMessage)
}

// decodeError returns the error of a ZStack error body, or nil when body is not one.
func decodeError(body []byte) *errorCode {
	var reply errorReply
	if json.Unmarshal(body, &reply) != nil || reply.Error.empty() {
		return nil
	}
	return reply.Error
}

// sessionExpired tells a refused session from any other answer. ZStack answers an expired or unknown session
// with 503 and code ID.1001 on every endpoint, which is also the status of a failed job: only the code tells
// them apart. A plain 401 is taken as a refused session too, should a proxy in front answer one.
func sessionExpired(resp *backend.Response) bool {
	if resp.StatusCode == http.StatusUnauthorized {
		return true
	}
	e := decodeError(resp.Body)
	return e != nil && string(e.Code) == codeInvalidSession
}

// parseJobReply turns an answer of GET /zstack/v1/api-jobs/{apiId} into an Observation or a classified
// error: 202 is a running job, 200 carries the API's result, 503 with an error body is a failed job, 404 is a
// job ZStack no longer knows.
func parseJobReply(resp *backend.Response) (backend.Observation, error) {
	switch resp.StatusCode {
	case http.StatusAccepted:
		// Documented as {}; an empty body is taken as the same.
		if len(bytes.TrimSpace(resp.Body)) > 0 && !isJSONObject(resp.Body) {
			return backend.Observation{}, backend.BadBody(resp, "not a JSON object")
		}
		return backend.Observation{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: statusRunning}, nil
	case http.StatusOK:
		if !isJSONObject(resp.Body) {
			return backend.Observation{}, backend.BadBody(resp, "not a JSON object")
		}
		result := compact(resp.Body)
		// The reply's error field is documented as "if not null, the operation failed".
		if e := decodeError(resp.Body); e != nil {
			return failedJob(e, result), nil
		}
		return backend.Observation{Phase: v1alpha1.TaskPhaseSucceeded, VendorStatus: statusSucceeded, Result: result}, nil
	case http.StatusServiceUnavailable:
		e := decodeError(resp.Body)
		// A job's failure never carries Retry-After; a 503 that does is an overloaded server or a proxy.
		if e == nil || resp.Header.Get("Retry-After") != "" || string(e.Code) == codeInvalidSession {
			return backend.Observation{}, errorFromReply(resp)
		}
		return failedJob(e, compact(resp.Body)), nil
	default:
		return backend.Observation{}, errorFromReply(resp)
	}
}

func failedJob(e *errorCode, body json.RawMessage) backend.Observation {
	return backend.Observation{Phase: v1alpha1.TaskPhaseFailed, VendorStatus: statusFailed, Message: e.String(), Result: body}
}

// progressReply is the documented answer of GET /zstack/v1/task-progresses/{apiId}. The records are not
// decoded into a list: a hostile answer can hold a million of them within the body limit, and only the few
// that progressSummary keeps matter.
type progressReply struct {
	Error       *errorCode      `json:"error"`
	Inventories progressSummary `json:"inventories"`
}

// progressRecord is one TaskProgressInventory as it stands in the body: the text fields are the raw JSON
// values, decoded only for the records that are kept. Numbers are read leniently: time is documented as a
// Long but written as a float (1.510669257141E12), and a record with an odd field should not hide the others.
type progressRecord struct {
	TaskName, Type, Content, SubTasks []byte
	Time                              lenientNumber
	TotalSteps, CurrentStep           lenientNumber
	HasSteps                          bool
}

// progressReport is what the progress records add to a running job's Observation.
type progressReport struct {
	Progress  *int32
	Message   string
	TaskName  string
	StartTime *time.Time
}

// applyTo copies the report into a running job's observation.
func (r progressReport) applyTo(obs *backend.Observation) {
	obs.Progress, obs.Message, obs.TaskName, obs.StartTime = r.Progress, r.Message, r.TaskName, r.StartTime
}

// parseProgressReply reads the progress records of a job: the newest Progress record's content is the percent
// (else currentStep of totalSteps where given), the newest Task record's content the message, the newest
// record's taskName the task name, and the oldest record's time the start. No records is not an error: ZStack
// answers an unknown id, a job that has reported nothing yet and a job whose records were purged alike.
func parseProgressReply(resp *backend.Response) (progressReport, error) {
	if resp.StatusCode != http.StatusOK {
		return progressReport{}, errorFromReply(resp)
	}
	var reply progressReply
	if !isJSONObject(resp.Body) || json.Unmarshal(resp.Body, &reply) != nil {
		return progressReport{}, backend.BadBody(resp, "not a JSON object with inventories")
	}
	if !reply.Error.empty() {
		if string(reply.Error.Code) == codeInvalidSession {
			return progressReport{}, sessionError(reply.Error)
		}
		return progressReport{}, backend.Errorf(backend.KindTransient, "ZStack could not report the task's progress: %s", reply.Error)
	}
	return reply.Inventories.report, nil
}

// maxDepth bounds how deep subTasks are followed, so that a hostile body cannot recurse without end.
const maxDepth = 16

// progressSummary reads a list of records and their subTasks, parents before children, one record at a time
// in place in the body, keeping only the newest record of each kind and the oldest time.
type progressSummary struct {
	report progressReport

	newest, newestTask, newestProgress, newestSteps progressRecord
	found                                           struct{ newest, task, progress, steps bool }
	newestPercent                                   *int32
	oldest                                          float64
}

var errNotRecords = errors.New("inventories is not a list of records")

func (s *progressSummary) UnmarshalJSON(b []byte) error {
	*s = progressSummary{}
	if err := s.addRecords(b, 0); err != nil {
		return err
	}
	// Only the kept records' texts are decoded, and b is not kept past this call.
	if s.found.newest {
		s.report.TaskName = backend.JSONText(s.newest.TaskName, backend.MaxTextBytes)
	}
	if s.found.task {
		s.report.Message = backend.OneLine(backend.JSONText(s.newestTask.Content, backend.MaxTextBytes), backend.MaxMessageLength)
	}
	switch r := s.newestSteps; {
	case s.found.progress:
		s.report.Progress = s.newestPercent
	case s.found.steps:
		s.report.Progress = backend.Percent(float64(r.CurrentStep) * 100 / float64(r.TotalSteps))
	}
	if s.oldest != 0 {
		start := time.UnixMilli(int64(s.oldest)).UTC()
		s.report.StartTime = &start
	}
	return nil
}

// addRecords reads a list of records (null is none) and, depth first, their subTasks.
func (s *progressSummary) addRecords(list []byte, depth int) error {
	if depth > maxDepth || backend.IsJSONNull(list) {
		return nil
	}
	if backend.JSONKind(list) != '[' {
		return errNotRecords
	}
	return backend.EachJSONElement(list, func(raw []byte) error {
		switch backend.JSONKind(raw) {
		case 'n':
			return nil // a null record is an empty one
		case '{':
		default:
			return errNotRecords
		}
		var r progressRecord
		var steps struct{ total, current bool }
		_ = backend.EachJSONMember(raw, func(key, value []byte) error {
			switch {
			case backend.JSONKeyIs(key, "taskName"):
				r.TaskName = value
			case backend.JSONKeyIs(key, "type"):
				r.Type = value
			case backend.JSONKeyIs(key, "content"):
				r.Content = value
			case backend.JSONKeyIs(key, "time"):
				r.Time = lenientNumberOf(value)
			case backend.JSONKeyIs(key, "totalSteps"):
				r.TotalSteps, steps.total = lenientNumberOf(value), !backend.IsJSONNull(value)
			case backend.JSONKeyIs(key, "currentStep"):
				r.CurrentStep, steps.current = lenientNumberOf(value), !backend.IsJSONNull(value)
			case backend.JSONKeyIs(key, "subTasks"):
				r.SubTasks = value
			}
			return nil
		})
		r.HasSteps = steps.total && steps.current
		s.add(&r)
		return s.addRecords(r.SubTasks, depth+1)
	})
}

// add weighs one record against the ones kept.
func (s *progressSummary) add(r *progressRecord) {
	// Records come root first, so a later record of the same time is the newer one.
	newer := func(found bool, than *progressRecord) bool { return !found || r.Time >= than.Time }
	if hasText(r.TaskName) && newer(s.found.newest, &s.newest) {
		s.newest, s.found.newest = *r, true
	}
	var typeBuf [16]byte
	switch {
	case bytes.EqualFold(backend.AppendJSONText(typeBuf[:0], r.Type, len(typeBuf)), []byte("Progress")):
		var contentBuf [64]byte
		if p, ok := percent(backend.AppendJSONText(contentBuf[:0], r.Content, len(contentBuf))); ok && newer(s.found.progress, &s.newestProgress) {
			s.newestProgress, s.found.progress, s.newestPercent = *r, true, p
		}
	case hasText(r.Content) && newer(s.found.task, &s.newestTask):
		s.newestTask, s.found.task = *r, true
	}
	if r.HasSteps && r.TotalSteps > 0 && r.CurrentStep >= 0 && newer(s.found.steps, &s.newestSteps) {
		s.newestSteps, s.found.steps = *r, true
	}
	if t := float64(r.Time); validMillis(t) && (s.oldest == 0 || t < s.oldest) {
		s.oldest = t
	}
}

// hasText reports whether a raw value reads as a text other than "": anything but absent, null and "".
func hasText(raw []byte) bool {
	v := bytes.TrimSpace(raw)
	return len(v) > 0 && string(v) != "null" && string(v) != `""`
}

// percent reads a Progress record's content: an integer percent as a string ("45"); a fraction is rounded
// down.
func percent(content []byte) (*int32, bool) {
	f, ok := backend.JSONNumber(bytes.TrimSuffix(bytes.TrimSpace(content), []byte("%")))
	if !ok {
		return nil, false
	}
	return backend.Percent(f), true
}

// validMillis accepts epoch milliseconds between 1970 and the year 5138, so that nonsense cannot overflow.
func validMillis(ms float64) bool { return ms > 0 && ms < 1e14 }

// loginReply is the documented answer of PUT /zstack/v1/accounts/login: a SessionInventory.
type loginReply struct {
	Inventory *struct {
		UUID backend.BoundedString `json:"uuid"`
	} `json:"inventory"`
}

// parseLoginReply returns the session uuid of a login answer. A refusal is KindAuthentication: ZStack answers a
// wrong account name or password with an identity error (ID.1000) in its usual 503 error body, and a login
// that fails for any other 4xx will not pass by retrying either. 5xx without an identity code stays
// transient: the management node may be starting.
func parseLoginReply(resp *backend.Response, accountName string) (string, error) {
	if resp.StatusCode == http.StatusOK {
		var reply loginReply
		if json.Unmarshal(resp.Body, &reply) != nil {
			return "", backend.BadBody(resp, "login answer is not JSON")
		}
		if reply.Inventory == nil || reply.Inventory.UUID == "" {
			if e := decodeError(resp.Body); e != nil {
				return "", backend.Errorf(backend.KindAuthentication, "ZStack refused the login of account %q: %s", accountName, e)
			}
			return "", backend.BadBody(resp, "login answer has no inventory.uuid")
		}
		return string(reply.Inventory.UUID), nil
	}
	e := decodeError(resp.Body)
	vendorText := plainText(resp.Body)
	if e != nil {
		vendorText = e.String()
	}
	refused := (resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests) ||
		(e != nil && strings.HasPrefix(string(e.Code), "ID."))
	if refused {
		return "", &backend.Error{Kind: backend.KindAuthentication, RetryAfter: resp.RetryAfter,
			Message: fmt.Sprintf("ZStack refused the login of account %q (HTTP %d): %s", accountName, resp.StatusCode, vendorText)}
	}
	err := backend.ErrorForStatus(resp, vendorText)
	if be, ok := backend.AsError(err); ok {
		be.Message = "login: " + be.Message
	}
	return "", err
}

// errorFromReply classifies an answer that is not a job state: the documented error body, or plain text for
// routing and authentication failures (404 "the job has been expired", 400 for a missing header).
func errorFromReply(resp *backend.Response) error {
	if resp.StatusCode < 400 {
		return backend.BadBody(resp, fmt.Sprintf("unexpected HTTP %d", resp.StatusCode))
	}
	e := decodeError(resp.Body)
	if e != nil && string(e.Code) == codeInvalidSession {
		return sessionError(e)
	}
	vendorText := plainText(resp.Body)
	if e != nil {
		vendorText = e.String()
	}
	return backend.ErrorForStatus(resp, vendorText)
}

// sessionError is a session that ZStack refused even after a fresh login, or a fixed sessionID it refuses.
func sessionError(e *errorCode) error {
	return backend.Errorf(backend.KindAuthentication, "ZStack refused the session: %s", e)
}

// plainText quotes a plain-text answer on one line, shortened; an HTML page or binary junk is not quoted.
func plainText(body []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(body[:min(len(body), 4*maxMessage)]), "?"))
	if s == "" || strings.HasPrefix(s, "<") {
		return ""
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return ""
		}
	}
	return backend.OneLine(s, maxMessage)
}

func nonEmpty(ss ...string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func isJSONObject(body []byte) bool {
	return backend.JSONKind(body) == '{' && json.Valid(body)
}

// compact returns body without insignificant whitespace, referencing body when it has none; body must be
// valid JSON.
func compact(body []byte) json.RawMessage { return backend.CompactJSON(body) }

// lenientText reads a JSON string, and any other JSON value as its text, so that a field of an unexpected
// type does not make the whole body unreadable. null reads as "". At most backend.MaxTextBytes are kept.
type lenientText string

func (t *lenientText) UnmarshalJSON(b []byte) error {
	*t = lenientText(backend.JSONText(b, backend.MaxTextBytes))
	return nil
}

// lenientNumber is a JSON number, or a number written as a string; null reads as 0 and anything else as -1,
// which every use takes as absent.
type lenientNumber float64

func lenientNumberOf(raw []byte) lenientNumber {
	if f, ok := backend.JSONNumber(raw); ok {
		return lenientNumber(f)
	}
	if backend.IsJSONNull(raw) {
		return 0
	}
	return -1
}
