package vendorsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/asynctask-operator/asynctask-operator/internal/backend/apigateway/aksk"
)

// API Gateway: GET /v2/{project_id}/apigw/instances/{instance_id}/async-tasks/{task_id}, as documented in
// "Querying the Result of an Asynchronous Task" (Open Telekom Cloud API Gateway API reference,
// ShowAsyncTaskResult), and the IAM password login POST /v3/auth/tokens (token in X-Subject-Token, 201). Error bodies are the documented
// {error_code, error_msg} with the documented codes and messages.
//
// Assumed where the documentation is silent, and not confirmed against a real gateway: a missing or wrong
// X-Auth-Token or AK/SK signature answers 401 APIG.1002 (the documented 401 body); a 429 carries the documented
// error shape with code APIG.1101; a refused IAM login answers 401 with the Keystone-style body
// {"error": {"code": 401, "message": ..., "title": "Unauthorized"}}; the IAM token's expires_at is 24 hours on.

const apigVendor = "APIGateway"

// apigStatusWords spells the neutral phases as the documented task_status enumeration.
var apigStatusWords = map[Phase]string{Pending: "waiting", Running: "processing", Succeeded: "succeed", Failed: "failed"}

// apigErrors are the documented error bodies by status.
var apigErrors = map[int][2]string{
	400: {"APIG.2001", "The request parameters must be specified,parameterName:task_id. Please refer to the support documentation"},
	401: {"APIG.1002", "Incorrect token or token resolution failed"},
	403: {"APIG.1005", "No permissions to request this method"},
	404: {"APIG.3093", "The asynchronous task %s does not exist"},
	429: {"APIG.1101", "Requests exceeded the limit"},
	500: {"APIG.9999", "System error"},
}

func (s *Simulator) registerAPIGateway(mux *http.ServeMux) {
	mux.HandleFunc("GET /v2/{project}/apigw/instances/{instance}/async-tasks/{task}", s.apigTask)
	mux.HandleFunc("POST /v3/auth/tokens", s.iamLogin)
	mux.HandleFunc("POST /v2/{project}/apigw/instances/{instance}/openapi/async-import", s.apigImport)
	mux.HandleFunc("POST /v2/{project}/apigw/instances/{instance}/openapi/async-export", s.apigExport)
}

// apigAuthorized accepts a live IAM token or the fixed token in X-Auth-Token, or a valid AK/SK signature over
// the request and its body.
func (s *Simulator) apigAuthorized(r *http.Request, body []byte) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), aksk.Algorithm+" ") {
		return s.creds.AccessKey != "" && strings.Contains(r.Header.Get("Authorization"), "Access="+s.creds.AccessKey+",") &&
			r.Header.Get("X-Project-Id") == r.PathValue("project") &&
			aksk.Verify(r, body, s.creds.AccessKey, s.creds.SecretKey)
	}
	return s.validSession(apigVendor, r.Header.Get("X-Auth-Token"))
}

func (s *Simulator) iamLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						Name     string `json:"name"`
						Password string `json:"password"`
						Domain   struct {
							Name string `json:"name"`
						} `json:"domain"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400, "message": "The request body is invalid.", "title": "Bad Request"}})
		return
	}
	user := body.Auth.Identity.Password.User
	if user.Name == "" || user.Name != s.creds.Username || user.Password != s.creds.Password || user.Domain.Name == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}})
		return
	}
	token := s.issueSession(apigVendor)
	w.Header().Set("X-Subject-Token", token)
	writeJSON(w, http.StatusCreated, map[string]any{"token": map[string]any{
		"expires_at": time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z"),
		"methods":    []string{"password"},
	}})
}

func (s *Simulator) apigTask(w http.ResponseWriter, r *http.Request) {
	if !s.apigAuthorized(r, nil) {
		apigError(w, http.StatusUnauthorized, "")
		return
	}
	id := r.PathValue("task")
	step, ok := s.poll(id)
	if !ok {
		apigError(w, http.StatusNotFound, id)
		return
	}
	if answerFault(w, r, step, func(status int) { apigError(w, status, id) }) {
		return
	}
	result := ""
	switch step.Phase {
	case Succeeded:
		result = step.Result
	case Failed:
		result = step.Result
		if result == "" {
			b, _ := json.Marshal(map[string]string{"error_code": "APIG.3201", "error_msg": step.Message})
			result = string(b)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"task_id":     id,
		"task_status": apigStatusWords[step.Phase],
		"task_type":   s.jobTaskType(id, "import_api"),
		"task_result": result,
	})
}

func apigError(w http.ResponseWriter, status int, taskID string) {
	e, ok := apigErrors[status]
	if !ok {
		e = apigErrors[500]
	}
	msg := e[1]
	if status == http.StatusNotFound {
		msg = fmt.Sprintf(msg, taskID)
	}
	writeJSON(w, status, map[string]string{"error_code": e[0], "error_msg": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
