package vendorsim

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// Traffic Ops: GET /api/{version}/async_status/{id} as documented in "async_status/{{id}}" (Apache Traffic
// Control documentation, Traffic Ops API reference), with the logins POST /api/{version}/user/login ({"u", "p"}) and
// POST /api/{version}/user/login/token ({"t"}) that answer Set-Cookie mojolicious=... and access_token=...
// Answers are the {"response": {...}} envelope; errors are {"alerts": [{"text", "level": "error"}]}.
//
// Assumed where the docs are silent (texts as the Traffic Ops source writes them):
//   - a wrong login answers 401 "Invalid username or password." / "Invalid token. Please contact your
//     administrator."; a login body that is not JSON answers 400;
//   - a non-integer id answers 400 "id must be an integer"; HTTPStatus 403 answers "missing required
//     Permissions: ASYNC-STATUS:READ"; any other error status answers its HTTP status text;
//   - the access_token cookie carries the same opaque session value as mojolicious (the real one is a JWT);
//     either cookie, or Authorization: Bearer with it, is accepted;
//   - every authenticated answer re-issues both cookies with a one-hour Max-Age (the sliding lifetime);
//   - Pending and Running are both PENDING; messages default to "Async job has started." / "Async job
//     completed." / "Async job failed." when the Step has none; start_time is when the job was first
//     polled, end_time when it was first seen finished, and null before (as documented). There is no
//     progress or result: Step.Progress and Step.Result are not sent.

const toVendor = "TrafficOps"

// toSessionCookies are the cookies a Traffic Ops login sets.
var toSessionCookies = []string{"mojolicious", "access_token"}

// toStatusWords spells the neutral phases as the documented status enumeration.
var toStatusWords = map[Phase]string{Pending: "PENDING", Running: "PENDING", Succeeded: "SUCCEEDED", Failed: "FAILED"}

var toDefaultMessages = map[Phase]string{
	Pending:   "Async job has started.",
	Running:   "Async job has started.",
	Succeeded: "Async job completed.",
	Failed:    "Async job failed.",
}

// toErrorTexts are the alert texts by status; others answer http.StatusText.
var toErrorTexts = map[int]string{
	400: "id must be an integer",
	401: "unauthorized, please log in.",
	403: "missing required Permissions: ASYNC-STATUS:READ",
	404: "Not Found",
}

var toVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// toJobTimes remembers when each simulated job was first polled and first seen finished. It lives beside the
// Simulator, keyed by it, because the times are this vendor's alone.
var toJobTimes sync.Map // toJobKey -> *toJobTime

type toJobKey struct {
	sim *Simulator
	id  string
}

type toJobTime struct {
	mu         sync.Mutex
	start, end time.Time
}

func (s *Simulator) registerTrafficOps(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/{version}/user/login", s.toLogin)
	mux.HandleFunc("POST /api/{version}/user/login/token", s.toTokenLogin)
	mux.HandleFunc("GET /api/{version}/async_status/{id}", s.toAsyncStatus)
	mux.HandleFunc("POST /api/{version}/deliveryservices/sslkeys/generate/acme", s.toACME)
}

func (s *Simulator) toLogin(w http.ResponseWriter, r *http.Request) {
	var form struct {
		U string `json:"u"`
		P string `json:"p"`
	}
	if !toKnownVersion(w, r) || !toReadJSON(w, r, &form) {
		return
	}
	if s.creds.Username == "" || form.U != s.creds.Username || form.P != s.creds.Password {
		toAlert(w, http.StatusUnauthorized, "Invalid username or password.")
		return
	}
	s.toStartSession(w)
}

func (s *Simulator) toTokenLogin(w http.ResponseWriter, r *http.Request) {
	var form struct {
		T string `json:"t"`
	}
	if !toKnownVersion(w, r) || !toReadJSON(w, r, &form) {
		return
	}
	if s.creds.Token == "" || form.T != s.creds.Token {
		toAlert(w, http.StatusUnauthorized, "Invalid token. Please contact your administrator.")
		return
	}
	s.toStartSession(w)
}

func (s *Simulator) toStartSession(w http.ResponseWriter) {
	toSetCookies(w, s.issueSession(toVendor))
	writeJSON(w, http.StatusOK, map[string]any{"alerts": []map[string]string{{"text": "Successfully logged in.", "level": "success"}}})
}

func (s *Simulator) toAsyncStatus(w http.ResponseWriter, r *http.Request) {
	if !toKnownVersion(w, r) {
		return
	}
	session, ok := s.toSession(r)
	if !ok {
		toAlert(w, http.StatusUnauthorized, toErrorTexts[401])
		return
	}
	id := r.PathValue("id")
	numericID, err := strconv.Atoi(id)
	if err != nil {
		toAlert(w, http.StatusBadRequest, toErrorTexts[400])
		return
	}
	step, ok := s.poll(id)
	if !ok {
		toAlert(w, http.StatusNotFound, toErrorTexts[404])
		return
	}
	if answerFault(w, r, step, func(status int) { toAlert(w, status, toErrorText(status)) }) {
		return
	}
	start, end := s.toTimes(id, step.Phase == Succeeded || step.Phase == Failed)
	message := step.Message
	if message == "" {
		message = toDefaultMessages[step.Phase]
	}
	toSetCookies(w, session)
	writeJSON(w, http.StatusOK, map[string]any{"response": map[string]any{
		"id":         numericID,
		"status":     toStatusWords[step.Phase],
		"start_time": start,
		"end_time":   end,
		"message":    message,
	}})
}

// toSession returns the caller's live session from its cookies or bearer token.
func (s *Simulator) toSession(r *http.Request) (string, bool) {
	var candidates []string
	for _, name := range toSessionCookies {
		if c, err := r.Cookie(name); err == nil {
			candidates = append(candidates, c.Value)
		}
	}
	if auth := r.Header.Get("Authorization"); len(auth) > len("Bearer ") && auth[:len("Bearer ")] == "Bearer " {
		candidates = append(candidates, auth[len("Bearer "):])
	}
	for _, c := range candidates {
		// The fixed Token is a login credential here, not a session.
		if c != s.creds.Token && s.validSession(toVendor, c) {
			return c, true
		}
	}
	return "", false
}

// toTimes returns the job's start_time and end_time (nil, encoded null, until it is seen finished).
func (s *Simulator) toTimes(id string, finished bool) (string, *string) {
	v, _ := toJobTimes.LoadOrStore(toJobKey{s, id}, &toJobTime{})
	jt := v.(*toJobTime)
	jt.mu.Lock()
	defer jt.mu.Unlock()
	now := time.Now().UTC()
	if jt.start.IsZero() {
		jt.start = now
	}
	if !finished {
		return jt.start.Format(time.RFC3339Nano), nil
	}
	if jt.end.IsZero() {
		jt.end = now
	}
	end := jt.end.Format(time.RFC3339Nano)
	return jt.start.Format(time.RFC3339Nano), &end
}

func toSetCookies(w http.ResponseWriter, session string) {
	for _, name := range toSessionCookies {
		http.SetCookie(w, &http.Cookie{Name: name, Value: session, Path: "/", MaxAge: 3600, HttpOnly: true})
	}
}

// toKnownVersion answers 404 for a path version that is not a version, as the server's router does.
func toKnownVersion(w http.ResponseWriter, r *http.Request) bool {
	if toVersion.MatchString(r.PathValue("version")) {
		return true
	}
	toAlert(w, http.StatusNotFound, toErrorTexts[404])
	return false
}

func toReadJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		toAlert(w, http.StatusBadRequest, "parsing JSON: "+err.Error())
		return false
	}
	return true
}

func toErrorText(status int) string {
	if text, ok := toErrorTexts[status]; ok {
		return text
	}
	if text := http.StatusText(status); text != "" {
		return text
	}
	return "Internal Server Error"
}

func toAlert(w http.ResponseWriter, status int, text string) {
	writeJSON(w, status, map[string]any{"alerts": []map[string]string{{"text": text, "level": "error"}}})
}
