package networkinsight

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// BenchmarkParseProgressReply measures the hot path of every Network Insight poll: one documented answer parsed
// into an Observation. Running answers dominate; a finished bulk save parses its app_save_response too.
func BenchmarkParseProgressReply(b *testing.B) {
	bodies := map[string]struct {
		status int
		body   string
	}{
		"in progress":           {http.StatusOK, `{"request_id":"TASK_PROGRESS_application.APP_BULK_SAVE.1641321499579.0.04202820074723557","task_name":"APP_BULK_SAVE","status":"IN_PROGRESS","progress":60,"start_time":1641321499579}`},
		"finished with results": {http.StatusOK, `{"request_id":"TASK_PROGRESS_application.APP_BULK_SAVE.1641321499579.0.04202820074723557","task_name":"APP_BULK_SAVE","status":"FINISHED","progress":100,"start_time":1641321499579,"app_save_response":[{"entityId":"18203:565:1","name":"web","responseCode":"SUCCESS"},{"entityId":"18203:565:2854896465419091802","name":"support-app-web","responseCode":"ALREADY_SAVED_APPLICATION","errorMessage":"Application email-app is already saved."}]}`},
		"404 error body":        {http.StatusNotFound, `{"code":404,"message":"Not found","details":[{"code":404,"message":"No task for request id X","target":["requestId"]}]}`},
	}
	for name, tc := range bodies {
		b.Run(name, func(b *testing.B) {
			resp := &backend.Response{StatusCode: tc.status, Header: http.Header{}, Body: []byte(tc.body)}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				_, _ = parseProgressReply(resp)
			}
		})
	}
}
