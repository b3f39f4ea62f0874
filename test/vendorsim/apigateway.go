package vendorsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// API Gateway: GET /v2/{project_id}/apigw/instances/{instance_id}/async-tasks/{task_id}, as documented in
// "Querying the Result of an Asynchronous Task" (vendor-docs/apig-show-async-task-result.html). Error bodies
// are the documented {error_code, error_msg} with the documented codes and messages. Assumed where the page is
// silent: a missing or wrong X-Auth-Token answers 401 APIG.1002 (the documented 401 body), and a 429 carries
// the body of the documented error shape with code APIG.1101.

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
}

func (s *Simulator) apigTask(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Auth-Token") != s.creds.Token || s.creds.Token == "" {
		apigError(w, http.StatusUnauthorized, "")
		return
	}
	id := r.PathValue("task")
	step, ok := s.poll(id)
	if !ok {
		apigError(w, http.StatusNotFound, id)
		return
	}
	delay(r, step)
	switch {
	case step.RawBody != "":
		writeRaw(w, step)
		return
	case step.HTTPStatus != 0:
		if step.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(step.RetryAfter))
		}
		apigError(w, step.HTTPStatus, id)
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
		"task_type":   "import_api",
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
