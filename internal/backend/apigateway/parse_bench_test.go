package apigateway

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// BenchmarkParseTaskReply measures the hot path of every API Gateway poll: one documented answer parsed into
// an Observation. Running answers dominate; a finished import parses its task_result too.
func BenchmarkParseTaskReply(b *testing.B) {
	bodies := map[string]struct {
		status int
		body   string
	}{
		"processing":     {http.StatusOK, `{"task_id":"4dfbf6acaacf4c41a8b3c50daa90d3dc","task_status":"processing","task_type":"import_api","task_result":""}`},
		"succeed import": {http.StatusOK, `{"task_id":"d9ce8c9eede54b3f841ec324fe0bfdc2","task_status":"succeed","task_type":"import_api","task_result":"{\"success\":[{\"id\":\"ee93ce6815f04896b301452982b92222\",\"action\":\"create\",\"method\":\"GET\",\"path\":\"/test1\"}],\"failure\":[],\"group_id\":\"9100ae30705947cc9543d37cd7fb388c\"}"}`},
		"404 error body": {http.StatusNotFound, `{"error_code":"APIG.3030","error_msg":"The task does not exist"}`},
	}
	for name, tc := range bodies {
		b.Run(name, func(b *testing.B) {
			resp := &backend.Response{StatusCode: tc.status, Header: http.Header{}, Body: []byte(tc.body)}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				_, _ = parseTaskReply(resp)
			}
		})
	}
}
