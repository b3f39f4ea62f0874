package trafficops

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// BenchmarkParseStatusReply measures one documented async_status answer parsed into an Observation.
func BenchmarkParseStatusReply(b *testing.B) {
	backendtest.BenchmarkParse(b, map[string]backendtest.Reply{
		"pending":   {Status: http.StatusOK, Body: `{"response":{"id":1,"status":"PENDING","start_time":"2021-02-18T17:13:56.352261Z","end_time":null,"message":"Async job has started."}}`},
		"succeeded": {Status: http.StatusOK, Body: `{"response":{"id":1,"status":"SUCCEEDED","start_time":"2021-02-18T17:13:56.352261Z","end_time":"2021-02-18T17:15:01.005Z","message":"ACME renewal complete."}}`},
		"404 alert": {Status: http.StatusNotFound, Body: `{"alerts":[{"text":"Resource not found.","level":"error"}]}`},
	}, func(resp *backend.Response) { _, _ = parseStatusReply(resp) })
}
