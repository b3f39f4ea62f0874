package apigateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// taskReply is the documented 200 body.
type taskReply struct {
	TaskID     string  `json:"task_id"`
	TaskStatus *string `json:"task_status"`
	TaskType   string  `json:"task_type"`
	// TaskResult is a JSON document inside a string; "" until the task ends.
	TaskResult string `json:"task_result"`
}

// errorReply is the documented body of every error status, and of a failed task's task_result.
type errorReply struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

func (e errorReply) String() string {
	switch {
	case e.ErrorCode != "" && e.ErrorMsg != "":
		return e.ErrorCode + ": " + e.ErrorMsg
	default:
		return e.ErrorCode + e.ErrorMsg
	}
}

// importResult is the part of an import_api task_result that the message summarises.
type importResult struct {
	Success []json.RawMessage `json:"success"`
	Failure []errorReply      `json:"failure"`
}

// phaseOfStatus maps the documented task_status words; the current Huawei Cloud page spells success
// "succeeded", the OTC page "succeed".
var phaseOfStatus = map[string]v1alpha1.TaskPhase{
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
	obs := backend.Observation{VendorStatus: *reply.TaskStatus, TaskName: reply.TaskType}
	phase, known := phaseOfStatus[strings.ToLower(*reply.TaskStatus)]
	if !known {
		phase = v1alpha1.TaskPhaseRunning
		obs.UnknownStatus = true
	}
	obs.Phase = phase
	obs.Result, obs.Message = readTaskResult(reply.TaskResult, phase)
	return obs, nil
}

// readTaskResult parses the task_result string into JSON and a message. A task_result that is not JSON is
// kept as a JSON string, so nothing the vendor said is lost.
func readTaskResult(raw string, phase v1alpha1.TaskPhase) (json.RawMessage, string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, ""
	}
	if !json.Valid([]byte(raw)) {
		quoted, _ := json.Marshal(raw)
		return quoted, "task_result is not JSON; kept as text"
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
		json.Unmarshal(result, &imported) == nil && (imported.Success != nil || imported.Failure != nil) {
		msg := fmt.Sprintf("Imported %d APIs", len(imported.Success))
		if n := len(imported.Failure); n > 0 {
			msg += fmt.Sprintf(", %d failed (first: %s)", n, imported.Failure[0].String())
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
