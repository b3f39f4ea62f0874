package trafficops

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// BenchmarkParseStatusReply measures the hot path of every Traffic Ops poll: one documented async_status answer
// parsed into an Observation.
func BenchmarkParseStatusReply(b *testing.B) {
	bodies := map[string]struct {
		status int
		body   string
	}{
		"pending":   {http.StatusOK, `{"response":{"id":1,"status":"PENDING","start_time":"2021-02-18T17:13:56.352261Z","end_time":null,"message":"Async job has started."}}`},
		"succeeded": {http.StatusOK, `{"response":{"id":1,"status":"SUCCEEDED","start_time":"2021-02-18T17:13:56.352261Z","end_time":"2021-02-18T17:15:01.005Z","message":"ACME renewal complete."}}`},
		"404 alert": {http.StatusNotFound, `{"alerts":[{"text":"Resource not found.","level":"error"}]}`},
	}
	for name, tc := range bodies {
		b.Run(name, func(b *testing.B) {
			resp := &backend.Response{StatusCode: tc.status, Header: http.Header{}, Body: []byte(tc.body)}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				_, _ = parseStatusReply(resp)
			}
		})
	}
}
