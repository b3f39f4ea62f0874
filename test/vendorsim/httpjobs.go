package vendorsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The generic job API: a plain JSON API of our own, for the generic HTTP backend (type HTTP). It is no vendor's;
// this comment is its documentation.
//
//   - POST /generic/v1/jobs, or POST /generic/v1/queues/{queue}/jobs (the same, on a path of the caller's, so
//     that tests sharing a Simulator keep apart), with a JSON object body, creates a job: 201 Created,
//     Location /generic/v1/jobs/{id}, body {"id": "job-<16 hex>", "status": "queued"}.
//   - GET /generic/v1/jobs/{id}: 200 {"id", "status", "progress", "message", "result", "created_at"}; status
//     is queued, running, succeeded or failed; progress an integer percent; result the job's result (JSON)
//     or null; created_at RFC 3339. An unknown job answers 404.
//   - Requests carry "Authorization: Bearer <token>" or Basic authentication; anything else answers 401.
//   - Errors are RFC 9457 problem details (application/problem+json): {type, title, status, detail}.
//   - Idempotency-Key, as the IETF draft "The Idempotency-Key HTTP Header Field"
//     (draft-ietf-httpapi-idempotency-key-header) says: the key is a Structured Field string ("..."); a bare
//     token is taken too. The first request with a key is processed and its answer kept; a request with the
//     same key and the same method, path and body (the fingerprint) gets that answer again, status and job ID
//     alike, and creates nothing; one while the first is still being processed answers 409 Conflict; one
//     with a different fingerprint answers 422 Unprocessable Content. Keys never expire. A request whose
//     processing never happened (a fault without Create) leaves no answer: the key may be used again.
//     Problem bodies of 409 and 422 are the draft's examples.

// httpStatusWords spells the neutral phases as the generic API's status words.
var httpStatusWords = map[Phase]string{Pending: "queued", Running: "running", Succeeded: "succeeded", Failed: "failed"}

// idempotencyProblemType is the problem type of the Idempotency-Key errors.
const idempotencyProblemType = "https://vendorsim.invalid/generic/v1/idempotency"

func (s *Simulator) registerHTTPJobs(mux *http.ServeMux) {
	mux.HandleFunc("POST /generic/v1/jobs", s.httpStart)
	mux.HandleFunc("POST /generic/v1/queues/{queue}/jobs", s.httpStart)
	mux.HandleFunc("GET /generic/v1/jobs/{id}", s.httpJob)
}

// httpAuthorized accepts the fixed Token as a bearer token, and the Username and Password as Basic.
func (s *Simulator) httpAuthorized(r *http.Request) bool {
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return s.creds.Token != "" && token == s.creds.Token
	}
	user, password, ok := r.BasicAuth()
	return ok && s.creds.Username != "" && user == s.creds.Username && password == s.creds.Password
}

func (s *Simulator) httpStart(w http.ResponseWriter, r *http.Request) {
	call, ok := s.beginStart(w, r, HTTPJobs)
	if !ok {
		return
	}
	w = call.w
	key, keyed, problemText := idempotencyKey(r.Header)
	if keyed {
		call.setKey(key)
	}
	if !s.httpAuthorized(r) {
		problem(w, http.StatusUnauthorized, "about:blank", "Unauthorized", "Send Authorization: Bearer <token> or Basic credentials.")
		return
	}
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mediaType != "application/json" {
		problem(w, http.StatusUnsupportedMediaType, "about:blank", "Unsupported Media Type", "The body must be application/json.")
		return
	}
	var body map[string]any
	if err := json.Unmarshal(call.rec.Body, &body); err != nil || body == nil {
		problem(w, http.StatusBadRequest, "about:blank", "Bad Request", "The body must be a JSON object.")
		return
	}
	if problemText != "" {
		problem(w, http.StatusBadRequest, idempotencyProblemType, "Idempotency-Key is invalid", problemText)
		return
	}
	if keyed {
		sum := sha256.Sum256([]byte(r.Method + " " + call.rec.Path + "\n" + string(call.rec.Body)))
		entry, state := s.acquireKey(key, hex.EncodeToString(sum[:]))
		switch state {
		case keyMismatch:
			problem(w, http.StatusUnprocessableEntity, idempotencyProblemType, "Idempotency-Key is already used",
				"This operation is idempotent and it requires correct usage of Idempotency Key. Idempotency Key MUST not be reused across different payloads of this operation.")
			return
		case keyBusy:
			problem(w, http.StatusConflict, idempotencyProblemType, "A request is outstanding for this Idempotency-Key",
				"A request with the same Idempotency-Key for the same operation is being processed or is outstanding.")
			return
		case keyAnswered:
			call.serve(func() startAnswer { return *entry.answer }, httpProblemFor, httpWithoutID)
			return
		}
		call.done = func() { s.releaseKey(key) }
		defer call.finish()
	}
	call.serve(func() startAnswer {
		id := "job-" + randomHex(8)
		s.createJob(call.rec, id, "")
		body, _ := json.Marshal(map[string]string{"id": id, "status": "queued"})
		a := jsonAnswer(http.StatusCreated, body)
		a.header.Set("Location", "/generic/v1/jobs/"+id)
		if keyed {
			s.keepKeyAnswer(key, a)
		}
		return a
	}, httpProblemFor, httpWithoutID)
}

// httpWithoutID is a 201 without the job's ID or Location.
func httpWithoutID(startAnswer) startAnswer {
	return jsonAnswer(http.StatusCreated, []byte(`{"status":"queued"}`))
}

// httpProblemFor writes the problem body of a status.
func httpProblemFor(w http.ResponseWriter, status int) {
	problem(w, status, "about:blank", http.StatusText(status), "")
}

func (s *Simulator) httpJob(w http.ResponseWriter, r *http.Request) {
	if !s.httpAuthorized(r) {
		problem(w, http.StatusUnauthorized, "about:blank", "Unauthorized", "Send Authorization: Bearer <token> or Basic credentials.")
		return
	}
	id := r.PathValue("id")
	step, ok := s.poll(id)
	if !ok {
		problem(w, http.StatusNotFound, "about:blank", "Not Found", "No job "+strconv.Quote(id)+".")
		return
	}
	if answerFault(w, r, step, func(status int) { httpProblemFor(w, status) }) {
		return
	}
	progress := step.Progress
	if step.Phase == Succeeded {
		progress = 100
	}
	var result json.RawMessage
	if step.Result != "" && (step.Phase == Succeeded || step.Phase == Failed) {
		result = json.RawMessage(step.Result)
		if !json.Valid(result) {
			result, _ = json.Marshal(step.Result)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":         id,
		"status":     httpStatusWords[step.Phase],
		"progress":   progress,
		"message":    step.Message,
		"result":     result,
		"created_at": s.jobCreated(id).UTC().Format(time.RFC3339),
	})
}

// jobCreated is when a created job was created, or when a scripted task was added.
func (s *Simulator) jobCreated(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.starts.jobs[id]; ok {
		return j.created
	}
	if t, ok := s.tasks[id]; ok && !t.created.IsZero() {
		return t.created
	}
	return time.Unix(0, 0)
}

// idempotencyKey reads the Idempotency-Key header: a Structured Field string, or a bare token. It returns a
// problem's detail when the header is there but not a key.
func idempotencyKey(h http.Header) (key string, present bool, problemText string) {
	values := h.Values("Idempotency-Key")
	switch {
	case len(values) == 0:
		return "", false, ""
	case len(values) > 1:
		return "", true, "Send one Idempotency-Key header."
	}
	key = strings.TrimSpace(values[0])
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
	}
	switch {
	case key == "":
		return "", true, "The Idempotency-Key is empty."
	case len(key) > 255:
		return "", true, "The Idempotency-Key is longer than 255 characters."
	case strings.ContainsAny(key, "\"\\"):
		return "", true, "The Idempotency-Key is not a Structured Field string."
	}
	return key, true, ""
}

type keyState int

const (
	keyAcquired keyState = iota // a new key: this request processes it
	keyBusy                     // a request with the key is being processed
	keyAnswered                 // processed before: its answer is kept
	keyMismatch                 // used before with another fingerprint
)

// acquireKey looks up a key for a request of the given fingerprint, taking it when it is new.
func (s *Simulator) acquireKey(key, fingerprint string) (*keyEntry, keyState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.starts.keys[key]
	switch {
	case !ok:
		s.starts.keys[key] = &keyEntry{fingerprint: fingerprint, inFlight: true}
		return nil, keyAcquired
	case e.fingerprint != fingerprint:
		return e, keyMismatch
	case e.inFlight:
		return e, keyBusy
	case e.answer != nil:
		return e, keyAnswered
	}
	e.inFlight = true // a request before this one left no answer: this one processes the key
	return nil, keyAcquired
}

// keepKeyAnswer keeps the answer of the request that processed a key.
func (s *Simulator) keepKeyAnswer(key string, a startAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.starts.keys[key]; ok {
		kept := a
		kept.header = a.header.Clone()
		e.answer = &kept
	}
}

// releaseKey ends the processing of a key; a key whose request left no answer is forgotten.
func (s *Simulator) releaseKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.starts.keys[key]; ok {
		e.inFlight = false
		if e.answer == nil {
			delete(s.starts.keys, key)
		}
	}
}

// problem writes an RFC 9457 problem details body.
func problem(w http.ResponseWriter, status int, problemType, title, detail string) {
	body := map[string]any{"type": problemType, "title": title, "status": status}
	if detail != "" {
		body["detail"] = detail
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Language", "en")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
