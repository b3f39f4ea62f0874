package networkinsight

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// BenchmarkParseProgressReply measures one documented answer parsed into an Observation. Running answers
// dominate; a finished bulk save parses its app_save_response too.
func BenchmarkParseProgressReply(b *testing.B) {
	backendtest.BenchmarkParse(b, map[string]backendtest.Reply{
		"in progress":           {Status: http.StatusOK, Body: `{"request_id":"TASK_PROGRESS_application.APP_BULK_SAVE.1641321499579.0.04202820074723557","task_name":"APP_BULK_SAVE","status":"IN_PROGRESS","progress":60,"start_time":1641321499579}`},
		"finished with results": {Status: http.StatusOK, Body: `{"request_id":"TASK_PROGRESS_application.APP_BULK_SAVE.1641321499579.0.04202820074723557","task_name":"APP_BULK_SAVE","status":"FINISHED","progress":100,"start_time":1641321499579,"app_save_response":[{"entityId":"18203:565:1","name":"web","responseCode":"SUCCESS"},{"entityId":"18203:565:2854896465419091802","name":"support-app-web","responseCode":"ALREADY_SAVED_APPLICATION","errorMessage":"Application email-app is already saved."}]}`},
		"404 error body":        {Status: http.StatusNotFound, Body: `{"code":404,"message":"Not found","details":[{"code":404,"message":"No task for request id X","target":["requestId"]}]}`},
	}, func(resp *backend.Response) { _, _ = parseProgressReply(resp) })
}
