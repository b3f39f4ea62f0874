package zstack

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// A running ZStack job costs two requests per poll: api-jobs (202 {}) and then task-progresses; both parsers are
// on the hot path.
func BenchmarkParseJobReply(b *testing.B) {
	backendtest.BenchmarkParse(b, map[string]backendtest.Reply{
		"202 running":    {Status: http.StatusAccepted, Body: `{}`},
		"200 result":     {Status: http.StatusOK, Body: `{"inventory": {"uuid": "b3a2c7d62c3b4d4b9d2e7d1c3d0f1a2b", "name": "vm1", "state": "Running"}}`},
		"503 failed job": {Status: http.StatusServiceUnavailable, Body: `{"error": {"code": "SYS.1000", "description": "An internal error happened in system", "details": "unable to allocate a host", "cause": {"code": "HOST_ALLOCATION.1001", "description": "no available host", "details": "no host has enough CPU"}}}`},
	}, func(resp *backend.Response) { _, _ = parseJobReply(resp) })
}

func BenchmarkParseProgressReply(b *testing.B) {
	backendtest.BenchmarkParse(b, map[string]backendtest.Reply{
		"root and progress": {Status: http.StatusOK, Body: `{"inventories":[{"taskUuid":"x-root","taskName":"org.zstack.header.vm.APICreateVmInstanceMsg","type":"Task","content":"Start the VM","time":1.510669257141E12},{"taskUuid":"x-progress","taskName":"org.zstack.header.vm.APICreateVmInstanceMsg","parentUuid":"x-root","type":"Progress","content":"60","time":1.510669317141E12}]}`},
		"empty":             {Status: http.StatusOK, Body: `{"inventories": []}`},
		"tree": {Status: http.StatusOK, Body: `{"inventories": [{"taskUuid": "root", "taskName": "org.zstack.header.vm.APICreateVmInstanceMsg", "type": "Task", "content": "Create the VM", "time": 1.51066925E12, "subTasks": [
			{"taskUuid": "p1", "taskName": "org.zstack.compute.vm.VmAllocateHostFlow", "parentUuid": "root", "type": "Progress", "content": "20", "time": 1510669251000},
			{"taskUuid": "t2", "taskName": "org.zstack.compute.vm.VmDownloadImageFlow", "parentUuid": "root", "type": "Task", "content": "Download the image", "time": 1510669252000, "totalSteps": 4, "currentStep": 2},
			{"taskUuid": "p2", "taskName": "org.zstack.compute.vm.VmDownloadImageFlow", "parentUuid": "t2", "type": "Progress", "content": "45", "time": "1510669253000"}]}]}`},
	}, func(resp *backend.Response) { _, _ = parseProgressReply(resp) })
}
