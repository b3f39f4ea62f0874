package zstack

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// A running ZStack job costs two requests per poll: api-jobs (202 {}) and then task-progresses; both parsers are
// on the hot path.
func BenchmarkParseJobReply(b *testing.B) {
	bodies := map[string]struct {
		status int
		body   string
	}{
		"202 running":    {http.StatusAccepted, `{}`},
		"200 result":     {http.StatusOK, `{"inventory": {"uuid": "b3a2c7d62c3b4d4b9d2e7d1c3d0f1a2b", "name": "vm1", "state": "Running"}}`},
		"503 failed job": {http.StatusServiceUnavailable, `{"error": {"code": "SYS.1000", "description": "An internal error happened in system", "details": "unable to allocate a host", "cause": {"code": "HOST_ALLOCATION.1001", "description": "no available host", "details": "no host has enough CPU"}}}`},
	}
	for name, tc := range bodies {
		b.Run(name, func(b *testing.B) {
			resp := &backend.Response{StatusCode: tc.status, Header: http.Header{}, Body: []byte(tc.body)}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				_, _ = parseJobReply(resp)
			}
		})
	}
}

func BenchmarkParseProgressReply(b *testing.B) {
	bodies := map[string]string{
		"root and progress": `{"inventories":[{"taskUuid":"x-root","taskName":"org.zstack.header.vm.APICreateVmInstanceMsg","type":"Task","content":"Start the VM","time":1.510669257141E12},{"taskUuid":"x-progress","taskName":"org.zstack.header.vm.APICreateVmInstanceMsg","parentUuid":"x-root","type":"Progress","content":"60","time":1.510669317141E12}]}`,
		"empty":             `{"inventories": []}`,
		"tree": `{"inventories": [{"taskUuid": "root", "taskName": "org.zstack.header.vm.APICreateVmInstanceMsg", "type": "Task", "content": "Create the VM", "time": 1.51066925E12, "subTasks": [
			{"taskUuid": "p1", "taskName": "org.zstack.compute.vm.VmAllocateHostFlow", "parentUuid": "root", "type": "Progress", "content": "20", "time": 1510669251000},
			{"taskUuid": "t2", "taskName": "org.zstack.compute.vm.VmDownloadImageFlow", "parentUuid": "root", "type": "Task", "content": "Download the image", "time": 1510669252000, "totalSteps": 4, "currentStep": 2},
			{"taskUuid": "p2", "taskName": "org.zstack.compute.vm.VmDownloadImageFlow", "parentUuid": "t2", "type": "Progress", "content": "45", "time": "1510669253000"}]}]}`,
	}
	for name, body := range bodies {
		b.Run(name, func(b *testing.B) {
			resp := &backend.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: []byte(body)}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_, _ = parseProgressReply(resp)
			}
		})
	}
}
