package apigateway

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// BenchmarkParseTaskReply measures one documented answer parsed into an Observation. Running answers
// dominate; a finished import parses its task_result too.
func BenchmarkParseTaskReply(b *testing.B) {
	backendtest.BenchmarkParse(b, map[string]backendtest.Reply{
		"processing":     {Status: http.StatusOK, Body: docProcessing},
		"succeed import": {Status: http.StatusOK, Body: `{"task_id":"d9ce8c9eede54b3f841ec324fe0bfdc2","task_status":"succeed","task_type":"import_api","task_result":"{\"success\":[{\"id\":\"ee93ce6815f04896b301452982b92222\",\"action\":\"create\",\"method\":\"GET\",\"path\":\"/test1\"}],\"failure\":[],\"group_id\":\"9100ae30705947cc9543d37cd7fb388c\"}"}`},
		"404 error body": {Status: http.StatusNotFound, Body: `{"error_code":"APIG.3030","error_msg":"The task does not exist"}`},
	}, func(resp *backend.Response) { _, _ = parseTaskReply(resp) })
}
