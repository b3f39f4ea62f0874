package vendorsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Network Insight (vRealize Network Insight / Aria Operations for Networks): GET
// /api/ni/groups/task/progress/{requestId} as documented in "Get Bulk Application Task Progress"
// (VMware Aria Operations for Networks API reference), and the token login POST /api/ni/auth/token
// answering {token, expiry} with expiry in 13-digit epoch milliseconds, as in every published example. Every
// later request carries "Authorization: NetworkInsight <token>". Error answers use the documented
// {code, message, details[{code, message, target[]}]} body.
//
// Assumed where the documentation is silent:
//   - the error body's code is the HTTP status, and the messages are this file's own wording; other statuses
//     (400, 429, 502, 503) answer the same shape;
//   - only FINISHED is a documented status word: a pending task answers NOT_STARTED, a running one
//     IN_PROGRESS, a failed one FAILED;
//   - a failed task's Message is reported as one app_save_response item with responseCode ERROR, since the
//     progress answer has no message field of its own; a Step's Result is the app_save_response array;
//   - the task's start_time is the time of its first poll;
//   - an LDAP login is accepted for the domain NetworkInsightLDAPDomain only; any other domain answers 401,
//     as the appliance answers a wrong domain;
//   - the callback_API form with a trailing slash (.../progress/<id>/) is answered like the documented one.

const niVendor = "NetworkInsight"

// NetworkInsightLDAPDomain is the one LDAP domain the simulated appliance knows.
const NetworkInsightLDAPDomain = "example.com"

// niTokenLifetime is how long a simulated token lasts (the product's tokens last hours).
const niTokenLifetime = 5 * time.Hour

// niStatusWords spells the neutral phases as Network Insight status words.
var niStatusWords = map[Phase]string{Pending: "NOT_STARTED", Running: "IN_PROGRESS", Succeeded: "FINISHED", Failed: "FAILED"}

// niErrorMessages are the messages of the error bodies, by status.
var niErrorMessages = map[int]string{
	400: "Bad request",
	401: "Authentication failed: token is invalid or expired",
	404: "Request id not found",
	429: "Too many requests",
	500: "Internal error",
	502: "Bad gateway",
	503: "Service unavailable",
}

// niStartTimes remembers each simulated task's start_time, so that it does not move between polls.
var niStartTimes sync.Map // niStartKey -> int64 epoch ms

type niStartKey struct {
	sim *Simulator
	id  string
}

func (s *Simulator) registerNetworkInsight(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/ni/auth/token", s.niLogin)
	mux.HandleFunc("GET /api/ni/groups/task/progress/{requestId}", s.niProgress)
	mux.HandleFunc("GET /api/ni/groups/task/progress/{requestId}/{$}", s.niProgress)
	mux.HandleFunc("POST /api/ni/groups/discovered-applications/save", s.niSave)
}

func (s *Simulator) niLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Domain   *struct {
			DomainType string `json:"domain_type"`
			Value      string `json:"value"`
		} `json:"domain"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Domain == nil {
		niError(w, http.StatusBadRequest, "request body must be {username, password, domain: {domain_type}}")
		return
	}
	domainOK := req.Domain.DomainType == "LOCAL" ||
		(req.Domain.DomainType == "LDAP" && req.Domain.Value == NetworkInsightLDAPDomain)
	if !domainOK || s.creds.Username == "" || req.Username != s.creds.Username || req.Password != s.creds.Password {
		niError(w, http.StatusUnauthorized, "")
		return
	}
	token := s.issueSession(niVendor)
	writeJSON(w, http.StatusOK, map[string]any{
		"token":  token,
		"expiry": time.Now().Add(niTokenLifetime).UnixMilli(),
	})
}

func (s *Simulator) niProgress(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "NetworkInsight ")
	if !ok || !s.validSession(niVendor, token) {
		niError(w, http.StatusUnauthorized, "")
		return
	}
	id := r.PathValue("requestId")
	step, found := s.poll(id)
	if !found {
		niError(w, http.StatusNotFound, id)
		return
	}
	if answerFault(w, r, step, func(status int) { niError(w, status, id) }) {
		return
	}
	start, _ := niStartTimes.LoadOrStore(niStartKey{s, id}, time.Now().UnixMilli())
	progress := float64(step.Progress)
	if step.Phase == Succeeded {
		progress = 100
	}
	body := map[string]any{
		"request_id": id,
		"task_name":  "APP_BULK_SAVE",
		"status":     niStatusWords[step.Phase],
		"progress":   progress,
		"start_time": start,
	}
	switch {
	case step.Result != "":
		if json.Valid([]byte(step.Result)) {
			body["app_save_response"] = json.RawMessage(step.Result)
		} else {
			body["app_save_response"] = step.Result
		}
	case step.Phase == Failed && step.Message != "":
		body["app_save_response"] = []map[string]string{{"responseCode": "ERROR", "errorMessage": step.Message}}
	case step.Phase == Succeeded || step.Phase == Failed:
		body["app_save_response"] = []any{}
	}
	writeJSON(w, http.StatusOK, body)
}

// niError answers the documented error body. For a 404, target names the request ID.
func niError(w http.ResponseWriter, status int, detail string) {
	msg, ok := niErrorMessages[status]
	if !ok {
		msg = http.StatusText(status)
	}
	details := []map[string]any{}
	switch {
	case status == http.StatusNotFound:
		details = append(details, map[string]any{"code": status,
			"message": fmt.Sprintf("No task progress for request id %s", detail), "target": []string{"requestId"}})
	case detail != "" && status == http.StatusBadRequest:
		details = append(details, map[string]any{"code": status, "message": detail, "target": []string{"body"}})
	}
	writeJSON(w, status, map[string]any{"code": status, "message": msg, "details": details})
}
